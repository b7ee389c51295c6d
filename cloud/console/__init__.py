"""The operator console: server-rendered pages at `/`, live updates over one browser stream."""
