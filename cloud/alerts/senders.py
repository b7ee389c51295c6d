"""One attempt at sending a claimed notification: a signed webhook or an Apprise URL.

Webhooks go through one shared `httpx.AsyncClient` (timeouts on every phase, no redirects:
a redirect could lead past the address check). Apprise is synchronous, so it runs in a
dedicated thread pool sized to the number of sends in flight: the default pool has
cores + 4 threads, and a few slow receivers would have queued everyone else behind them.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from cloud.alerts import channel_secrets, messages
from cloud.alerts.image_links import signed_image_url
from cloud.alerts.outbox import AttemptResult, Claimed
from cloud.alerts.urls import UrlRefused, apprise_target, check_host, webhook_target
from cloud.captures.storage import SnapshotStore
from cloud.core.config import Settings
from cloud.models import AttemptOutcome, ChannelKind

USER_AGENT = "Visant-Alerts/1"
MAX_ERROR_LENGTH = 500  # characters of an error kept per attempt
MAX_RESPONSE_EXCERPT = 200  # characters of a refusing receiver's body kept in the error


def _failed(
    started: datetime, began: float, error: str, status: int | None = None
) -> AttemptResult:
    return AttemptResult(
        AttemptOutcome.FAILED,
        started,
        (time.monotonic() - began) * 1000,
        http_status=status,
        error=error[:MAX_ERROR_LENGTH],
    )


class Senders:
    """Sends one notification per call; never raises for a receiver's failure."""

    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore,
        http: httpx.AsyncClient,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._settings = settings
        self._store = store
        self._http = http
        self._pool = pool

    async def send(self, claimed: Claimed) -> AttemptResult:
        started, began = datetime.now(UTC), time.monotonic()
        try:
            url = channel_secrets.decrypt(self._settings.secret_key, claimed.url_ciphertext)
            if claimed.kind is ChannelKind.WEBHOOK:
                return await self._webhook(claimed, url, started, began)
            return await self._apprise(claimed, url, started, began)
        except (UrlRefused, channel_secrets.SecretUnreadable) as exc:
            return _failed(started, began, f"refused: {exc}")

    def _image_url(self, claimed: Claimed) -> str | None:
        capture_id = claimed.payload.get("data", {}).get("capture_id")
        if not capture_id or not claimed.payload.get("snapshot"):
            return None
        settings = self._settings
        return signed_image_url(
            settings.alerts_public_url or f"http://{settings.host}:{settings.port}",
            self._settings.secret_key,
            capture_id,
            time.time(),
            self._settings.alerts_image_url_ttl_seconds,
        )

    async def _webhook(
        self, claimed: Claimed, url: str, started: datetime, began: float
    ) -> AttemptResult:
        host, port = webhook_target(url)
        await check_host(host, port, self._settings.allow_private_webhooks)
        assert claimed.secret_ciphertext is not None
        secret = channel_secrets.decrypt(self._settings.secret_key, claimed.secret_ciphertext)
        event = messages.webhook_event(
            claimed.event_type,
            datetime.fromisoformat(claimed.payload["timestamp"]),
            claimed.payload.get("data", {}),
            self._image_url(claimed),
        )
        body = json.dumps(event, separators=(",", ":"))
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            # The same id on every retry: the receiver's idempotency key.
            "webhook-id": claimed.notification_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(claimed.notification_id, now, body),
        }
        try:
            response = await self._http.post(url, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            return _failed(
                started, began, f"timeout after {self._settings.alerts_send_timeout_seconds:g} s"
            )
        except httpx.HTTPError as exc:
            return _failed(started, began, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return AttemptResult(
                AttemptOutcome.DELIVERED,
                started,
                (time.monotonic() - began) * 1000,
                http_status=response.status_code,
            )
        excerpt = response.text[:MAX_RESPONSE_EXCERPT]
        return _failed(
            started, began, f"HTTP {response.status_code}: {excerpt}", response.status_code
        )

    async def _apprise(
        self, claimed: Claimed, url: str, started: datetime, began: float
    ) -> AttemptResult:
        loop = asyncio.get_running_loop()
        host, port, _ = await loop.run_in_executor(self._pool, apprise_target, url)
        if host:
            await check_host(host, port, self._settings.allow_private_webhooks)
        attachment = None
        snapshot = claimed.payload.get("snapshot")
        if snapshot:
            key, content_type = snapshot
            try:
                image = await loop.run_in_executor(self._pool, self._store.get, key)
                capture_id = claimed.payload.get("data", {}).get("capture_id") or "snapshot"
                attachment = (image, f"{capture_id}.{content_type.split('/')[-1]}", content_type)
            except Exception:  # noqa: BLE001 - deleted by retention: send the text anyway
                attachment = None
        ok, error = await loop.run_in_executor(
            self._pool,
            _apprise_notify,
            url,
            claimed.payload.get("title", ""),
            claimed.payload.get("body", ""),
            attachment,
            self._settings.alerts_send_timeout_seconds,
        )
        if ok:
            return AttemptResult(
                AttemptOutcome.DELIVERED, started, (time.monotonic() - began) * 1000
            )
        return _failed(started, began, error)


def _apprise_notify(
    url: str, title: str, body: str, attachment: tuple[bytes, str, str] | None, timeout: float
) -> tuple[bool, str]:
    """Blocking: one Apprise notify with a call deadline; (ok, error text from its log)."""
    import apprise
    from apprise.attachment.memory import AttachMemory
    from apprise.result import AppriseResultStatus

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return False, "invalid Apprise URL"
    for service in notifier:
        # Per-request socket timeouts below the call deadline, so a hung receiver ends here.
        service.socket_connect_timeout = min(service.socket_connect_timeout, timeout)
        service.socket_read_timeout = min(service.socket_read_timeout, timeout)
    attach: Any = None
    if attachment is not None:
        content, name, mimetype = attachment
        attach = AttachMemory(content=content, name=name, mimetype=mimetype)
    logs: list[str] = []
    result = notifier.notify(
        body=body or title,
        title=title,
        attach=attach,
        timeout=timeout,
        log_callback=lambda entry, _service: logs.append(f"{entry.level}: {entry.message}"),
    )
    if result.status == AppriseResultStatus.SUCCESS:
        return True, ""
    problems = [line for line in logs if not line.startswith(("DEBUG", "INFO"))]
    return False, f"apprise {result.status.name.lower()}: " + "; ".join(problems[-3:])
