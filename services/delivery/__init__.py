"""delivery service: signed POSTs with retries, every attempt recorded in Postgres."""
