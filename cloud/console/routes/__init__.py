"""The console's routes, one module per page (plus sign-in and the live stream)."""
