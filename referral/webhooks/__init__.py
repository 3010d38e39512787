"""Webhooks: the outbox delivered to the shop's endpoints, signed the Standard Webhooks way."""
