"""The process's metric objects. Subsystems count with one-line calls on these.

No metric has a per-device label: label values come from small fixed sets (command types,
outcomes, refusal reasons, route templates), so a fleet of 10,000 devices costs the same
series as one. Values that live in PostgreSQL (triggers by state, scheduler lag) or in one
app object (streams open, pool in use) are read at scrape time by `cloud.metrics.scrape`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Push: from the manual trigger API call to the event's bytes written to the device's socket.
PUSH_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

COMMANDS = Counter(
    "visant_commands",
    "Commands handled by this instance's streams, by type and outcome "
    "(written, expired, queue_full).",
    ["type", "outcome"],
    registry=REGISTRY,
)
PUSH_LATENCY = Histogram(
    "visant_push_latency_seconds",
    "Manual trigger: API call to the command's bytes written to the stream.",
    buckets=PUSH_LATENCY_BUCKETS,
    registry=REGISTRY,
)
MANUAL_TRIGGER_BATCH = Histogram(
    "visant_manual_trigger_batch_size",
    "Manual trigger requests stored by one statement (more than one: requests waited).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
UPLOAD_BATCH = Histogram(
    "visant_upload_batch_size",
    "Uploads served by one statement, by statement (admission: key, count and lookups; row: "
    "the capture stored); more than one: uploads waited.",
    ["statement"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
STREAMS_OPENED = Counter(
    "visant_streams_opened", "Device streams opened on this instance.", registry=REGISTRY
)
STREAMS_CLOSED = Counter(
    "visant_streams_closed",
    "Device streams ended on this instance, by reason code.",
    ["reason"],
    registry=REGISTRY,
)
LISTENER_RECONNECTS = Counter(
    "visant_listener_reconnects",
    "Times the LISTEN connection was re-established after a loss.",
    registry=REGISTRY,
)
SCHEDULER_TICKS = Counter(
    "visant_scheduler_ticks", "Completed scheduler ticks on this instance.", registry=REGISTRY
)
SCHEDULER_TRIGGERS = Counter(
    "visant_scheduler_triggers",
    "Scheduled triggers created by this instance's scheduler.",
    registry=REGISTRY,
)
SCHEDULER_SKIPPED_SLOTS = Counter(
    "visant_scheduler_skipped_slots",
    "Schedule slots skipped (device offline or its previous trigger still open).",
    registry=REGISTRY,
)
SCHEDULER_TICK_SECONDS = Histogram(
    "visant_scheduler_tick_seconds",
    "Duration of one scheduler tick.",
    buckets=HTTP_BUCKETS,
    registry=REGISTRY,
)
UPLOADS = Counter("visant_uploads", "Captures stored.", registry=REGISTRY)
UPLOAD_BYTES = Counter("visant_upload_bytes", "Snapshot bytes stored.", registry=REGISTRY)
UPLOAD_REFUSALS = Counter(
    "visant_upload_refusals",
    "Uploads refused, by reason (too_large, rate_limited, unauthorized, invalid, unavailable).",
    ["reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "visant_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "visant_http_request_duration_seconds",
    "HTTP request duration by route template (streaming routes are not observed).",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
    registry=REGISTRY,
)
# Hooks for the alerts and notifications subsystem: it increments these.
ALERTS = Counter(
    "visant_alerts",
    "Alerts evaluated, by outcome (fired, resolved, suppressed).",
    ["outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "visant_notifications",
    "Notifications sent, by channel type and outcome (sent, failed, retried).",
    ["channel", "outcome"],
    registry=REGISTRY,
)


def observe_push(seconds: float) -> None:
    """A manual capture command reached its socket `seconds` after its API call."""
    PUSH_LATENCY.observe(max(seconds, 0.0))


def count_upload(size_bytes: int) -> None:
    """A capture and its snapshot were stored."""
    UPLOADS.inc()
    UPLOAD_BYTES.inc(size_bytes)


def count_scheduler_tick(triggered: int, skipped: int, seconds: float) -> None:
    SCHEDULER_TICKS.inc()
    SCHEDULER_TRIGGERS.inc(triggered)
    SCHEDULER_SKIPPED_SLOTS.inc(skipped)
    SCHEDULER_TICK_SECONDS.observe(seconds)
