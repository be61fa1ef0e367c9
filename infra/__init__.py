"""Shared infrastructure: the pool and migrations, the Redis doorbell, keys, tokens, errors, config, metrics,
limits, accounts and the identity type. Imports nothing of helpline above it."""
