"""Customer portal sessions: a one-time link an account gives its customer, exchanged for a
session that manages the account's webhooks (all, or some) until it expires."""
