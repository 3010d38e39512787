"""The app's HTTP plumbing: request dependencies, Idempotency-Key, list queries.

It sits with the app, above the domains (it knows the caller and the runtime), and holds
no rule of any domain.
"""
