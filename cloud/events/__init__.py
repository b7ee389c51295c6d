"""Change events for the operator console: one NOTIFY channel, written with the change itself."""
