"""Prometheus metrics: the registry, the metric objects, the scrape and the HTTP middleware."""
