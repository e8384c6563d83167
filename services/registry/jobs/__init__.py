"""Background jobs an account orders (a webhook's recovery) and how far each has come."""
