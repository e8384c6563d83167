"""Workflows: CRUD with code checked on save, versions, and their execution log."""
