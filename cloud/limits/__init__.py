"""Rate limits counted in PostgreSQL, so N instances allow what one does."""
