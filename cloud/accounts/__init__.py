"""Accounts and operations: orgs, users, tokens, the audit log, the account commands."""
