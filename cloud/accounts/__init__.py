"""Accounts and operations: orgs, users, tokens, the audit log, and the `python -m cloud` commands."""
