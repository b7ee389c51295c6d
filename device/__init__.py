"""Visant device agent: receives commands over SSE, captures, uploads."""

__version__ = "2.1.0"
