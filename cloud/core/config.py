"""Settings for the cloud, read from the environment and `.env` (see `.env.example`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.core.logs import LogFormat

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the value refused outside development


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class StorageBackend(StrEnum):
    FILESYSTEM = "filesystem"
    S3 = "s3"


class StreamImpl(StrEnum):
    """How the device stream is written: our lean response, or sse-starlette's (comparison)."""

    VISANT = "visant"
    SSE_STARLETTE = "sse-starlette"


class Settings(BaseSettings):
    """Every setting of the cloud; env names are `VISANT_<NAME>` except `DATABASE_URL`."""

    model_config = SettingsConfigDict(
        env_prefix="VISANT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Environment = Environment.DEVELOPMENT
    secret_key: str = PLACEHOLDER_SECRET
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    data_dir: Path = Path(".visant")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    access_log: bool = False  # uvicorn access lines (never for the command stream)
    metrics_token: str | None = None  # unset: /metrics answers loopback clients only
    # Connections past db_pool_size (the overflow) are closed when given back, so a load that
    # keeps more than the pool busy opened and closed a PostgreSQL connection per request
    # (~2 ms of PostgreSQL CPU per upload at 32 concurrent, docs/performance.md): the pool
    # holds them all and the overflow is 0 unless set.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    # Past this wait for a pooled connection (every one in use) a request is 503 "database busy".
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # A new connection, or a statement, that takes longer fails as 503 "database unavailable"
    # (PostgreSQL unreachable, or its link silently dead) instead of holding the request.
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    db_command_timeout_seconds: float = Field(default=30.0, gt=0)

    keepalive_seconds: float = Field(default=15.0, gt=0)
    stream_retry_ms: int = Field(default=5000, ge=100)
    stream_send_timeout_seconds: float = Field(default=10.0, gt=0)
    # Unacknowledged data this long aborts a connection (a half-open link); unset: two
    # keepalives, the presence window (cloud/core/tcp.py).
    tcp_user_timeout_seconds: float | None = Field(default=None, gt=0)
    stream_queue_size: int = Field(default=64, ge=1)
    stream_opens_per_device_per_minute: int = Field(default=30, ge=1)
    manual_trigger_ttl_seconds: int = Field(default=300, ge=1)
    scheduled_trigger_ttl_seconds: int = Field(default=300, ge=1)
    max_open_manual_triggers: int = Field(default=50, ge=1)
    delivery_wait_seconds: float = Field(default=1.0, ge=0)
    # Manual trigger requests are stored in batches (cloud/triggers/batcher.py): at most this
    # many statements at once, each for at most this many requests.
    manual_trigger_batch_connections: int = Field(default=2, ge=1)
    manual_trigger_batch_max: int = Field(default=64, ge=1)
    reaper_interval_seconds: float = Field(default=1.0, gt=0)
    device_command_ttl_seconds: int = Field(default=120, ge=1)
    max_open_device_commands: int = Field(default=20, ge=1)
    max_health_report_bytes: int = Field(default=16384, ge=256)
    max_command_result_bytes: int = Field(default=262144, ge=1024)
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    stream_impl: StreamImpl = StreamImpl.VISANT

    scheduler_enabled: bool = True
    scheduler_tick_seconds: float = Field(default=1.0, gt=0)
    scheduler_batch_size: int = Field(default=500, ge=1)
    min_interval_seconds: int = Field(default=1, ge=1)

    max_request_bytes: int = Field(default=15 * 1024 * 1024, ge=1024)
    # Every other route's body (JSON): refused while it streams in, before it is parsed.
    max_json_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    uploads_per_device_per_minute: int = Field(default=120, ge=1)
    # An upload's admission and its row are each stored in batches (cloud/captures/
    # upload_batches.py): at most this many statements of each at once, each for at most this
    # many uploads.
    upload_batch_connections: int = Field(default=2, ge=1)
    upload_batch_max: int = Field(default=64, ge=1)
    # Login attempts (failed ones and those in flight) per window, per account and per address.
    login_attempts_per_account: int = Field(default=10, ge=1)
    login_attempts_per_address: int = Field(default=100, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    password_hash_threads: int = Field(default=2, ge=1)
    # Expired or revoked tokens and ended rate windows are deleted this often.
    prune_interval_seconds: float = Field(default=600.0, gt=0)

    storage_backend: StorageBackend = StorageBackend.FILESYSTEM
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    retention_days: int = Field(default=30, ge=0)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    # Terminal triggers (executed, failed, expired) finished longer ago than this are deleted.
    trigger_retention_days: int = Field(default=30, ge=0)
    # Device connection history (opened/ended streams) older than this is deleted; 0 keeps it.
    connection_history_days: int = Field(default=30, ge=0)
    # Snapshot files with no capture row, older than this, are deleted by retention.
    orphan_snapshot_grace_seconds: float = Field(default=3600.0, gt=0)

    # Alerts and notifications (docs/alerts.md): channel URLs may point at loopback/private
    # addresses only when allowed; watcher and delivery periods (s); send timeout (s); retries.
    allow_private_webhooks: bool = False
    alerts_watch_interval_seconds: float = Field(default=5.0, gt=0)
    alerts_delivery_poll_seconds: float = Field(default=2.0, gt=0)
    alerts_send_timeout_seconds: float = Field(default=10.0, gt=0)
    alerts_max_attempts: int = Field(default=8, ge=1, le=100)
    alerts_retry_base_seconds: float = Field(default=2.0, gt=0)
    alerts_retry_max_seconds: float = Field(default=600.0, gt=0)
    alerts_max_in_flight: int = Field(default=32, ge=1, le=1000)
    alerts_image_url_ttl_seconds: int = Field(default=86400, ge=60)
    alerts_public_url: str | None = None

    # Operator console (docs/console.md): devices per fleet page, open live pages per user,
    # seconds between keepalive comments on a page's live stream.
    console_page_size: int = Field(default=50, ge=1, le=500)
    console_streams_per_user: int = Field(default=8, ge=1, le=1000)
    console_keepalive_seconds: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment != Environment.DEVELOPMENT and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError(
                "VISANT_SECRET_KEY is the placeholder; set a real secret outside development"
            )
        return self

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"
