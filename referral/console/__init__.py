"""The merchant console: server-rendered pages over the services, for the shop's team.

A person signs in with a one-time link (`referral console-link`), and works in one merchant
and mode per session; every action goes through the same service functions as the API, with
the person's name or email as its actor.
"""
