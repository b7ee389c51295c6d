"""Talks to the cloud's device routes (upload, failed trigger, config ack); drains the spool."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from device import __version__
from device.backoff import Backoff
from device.blocking import run_blocking
from device.spool import Spool, SpoolEntry

logger = logging.getLogger(__name__)

RETRY_BASE_DELAY = 2.0  # seconds, first spool retry ceiling
RETRY_MAX_DELAY = 30.0  # seconds; a server that comes back is found within this
RETRYABLE_STATUS = {408, 429}
# A capture the server keeps failing (5xx) backs off on its own, up to this, while newer
# captures behind it are sent: one poisoned entry must not hold up the whole spool.
ENTRY_MAX_DELAY = 300.0  # seconds


class UploadOutcome(enum.Enum):
    DELIVERED = "delivered"  # the cloud has the capture (new or already stored)
    RETRY = "retry"  # network error, timeout, 408/429/5xx: keep it and try later
    REJECTED = "rejected"  # any other 4xx: final, never retried


@dataclass(frozen=True)
class UploadResult:
    outcome: UploadOutcome
    detail: str
    status_code: int | None = None
    record_id: str | None = None
    retry_after: float | None = None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class CloudClient:
    """The device's authenticated HTTP client; every call has a timeout."""

    def __init__(self, api_url: str, device_id: str, api_key: str, timeout: float) -> None:
        self.device_id = device_id
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"visant-device/{__version__}",
            },
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        )

    async def upload(self, image: bytes, metadata: dict[str, Any]) -> UploadResult:
        """POST one capture as multipart (image + metadata JSON) and classify the answer."""
        content_type = "image/png" if image[:4] == b"\x89PNG" else "image/jpeg"
        files = {"image": ("capture.jpg", image, content_type)}
        data = {"metadata": json.dumps(metadata)}
        try:
            response = await self._client.post("/v1/captures", files=files, data=data)
        except httpx.HTTPError as exc:
            return UploadResult(UploadOutcome.RETRY, f"{type(exc).__name__}: {exc}".rstrip(": "))
        code = response.status_code
        if code in (200, 201):
            record_id = None
            with contextlib.suppress(ValueError, AttributeError):
                record_id = response.json().get("record_id")
            return UploadResult(UploadOutcome.DELIVERED, "uploaded", code, record_id)
        outcome = UploadOutcome.RETRY
        if 400 <= code < 500 and code not in RETRYABLE_STATUS:
            outcome = UploadOutcome.REJECTED
        return UploadResult(outcome, _detail(response), code, retry_after=_retry_after(response))

    async def report_failed(self, trigger_id: str, reason: str) -> bool:
        """Tell the cloud a trigger could not be captured; True once the cloud has recorded it."""
        path = f"/v1/devices/{self.device_id}/triggers/{trigger_id}/failed"
        try:
            response = await self._client.post(path, json={"reason": reason[:500]})
        except httpx.HTTPError as exc:
            logger.warning("could not report trigger %s failed: %s", trigger_id, exc)
            return False
        if response.status_code in (200, 404, 409):  # 409/404: already terminal or gone
            return True
        logger.warning("reporting trigger %s failed got %s", trigger_id, response.status_code)
        return False

    async def ack_config(self, version: int, config: dict[str, Any]) -> bool:
        """Acknowledge an applied config version; True when the cloud accepted it."""
        path = f"/v1/devices/{self.device_id}/config/ack"
        try:
            response = await self._client.post(path, json={"version": version, "config": config})
        except httpx.HTTPError as exc:
            logger.warning("could not acknowledge config version %d: %s", version, exc)
            return False
        if response.status_code != 200:
            logger.warning(
                "config ack %d refused: %s %s", version, response.status_code, _detail(response)
            )
        return response.status_code == 200

    async def post_health(self, report: dict[str, Any]) -> bool:
        """Send one health report; True when the cloud stored it."""
        try:
            response = await self._client.post(f"/v1/devices/{self.device_id}/health", json=report)
        except httpx.HTTPError as exc:
            logger.warning("could not send health report: %s", exc)
            return False
        if response.status_code != 200:
            logger.warning("health report refused: %s %s", response.status_code, _detail(response))
        return response.status_code == 200

    async def post_result(
        self, command_id: str, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        """Answer a device command; True once the cloud has it (or it is already terminal)."""
        path = f"/v1/devices/{self.device_id}/commands/{command_id}/result"
        body: dict[str, Any] = {"result": result} if error is None else {"error": error[:2000]}
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            logger.warning("could not answer command %s: %s", command_id, exc)
            return False
        if response.status_code in (200, 404, 409):  # 409/404: already terminal or gone
            return True
        logger.warning(
            "answer to command %s refused: %s %s",
            command_id,
            response.status_code,
            _detail(response),
        )
        return False

    async def aclose(self) -> None:
        await self._client.aclose()


class SpoolSender:
    """Delivers spooled captures oldest first, backing off while the cloud is unreachable."""

    def __init__(self, spool: Spool, client: CloudClient) -> None:
        self.spool = spool
        self._client = client
        self._backoff = Backoff(RETRY_BASE_DELAY, RETRY_MAX_DELAY)
        self._in_flight: set[str] = set()
        self._entry_retry: dict[str, tuple[int, float]] = {}  # name -> (failures, retry at)
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def backlogged(self) -> bool:
        """True while the last attempt failed and captures wait for a retry."""
        return self._backoff.attempt > 0

    def wake(self, reset_backoff: bool = False) -> None:
        """Try the spool now (a new entry, or the stream just reconnected)."""
        if reset_backoff:
            self._backoff.reset()
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def claim(self, entry: SpoolEntry) -> None:
        """Keep the background drain away from an entry the capture path sends itself."""
        self._in_flight.add(entry.name)

    def release(self, entry: SpoolEntry) -> None:
        self._in_flight.discard(entry.name)

    async def deliver(self, entry: SpoolEntry, claimed: bool = False) -> UploadResult:
        """Upload one entry; remove it when delivered, move it aside when refused for good."""
        if not claimed:
            if entry.name in self._in_flight:
                return UploadResult(UploadOutcome.RETRY, "already being sent")
            self.claim(entry)  # no await since the check: the claim is atomic on the loop
        try:
            loaded = await run_blocking(self.spool.load, entry)
            if loaded is None:
                # Already delivered and removed by the capture path, or damaged on disk.
                await run_blocking(self.spool.remove, entry)
                return UploadResult(UploadOutcome.REJECTED, "spool entry gone or damaged")
            result = await self._client.upload(*loaded)
            if result.outcome is UploadOutcome.DELIVERED:
                await run_blocking(self.spool.remove, entry)
            elif result.outcome is UploadOutcome.REJECTED:
                logger.error(
                    "capture %s refused (%s %s); moved to %s/rejected",
                    entry.name,
                    result.status_code,
                    result.detail,
                    self.spool.directory,
                )
                reason = f"{result.status_code} {result.detail}"
                await run_blocking(self.spool.reject, entry, reason)
            return result
        finally:
            self.release(entry)

    async def run(self) -> None:
        """Drain the spool until ``stop()``; wait for ``wake()`` or the backoff delay."""
        while not self._stopping:
            self._wake.clear()
            blocked = await self._drain()
            if self._stopping:
                break
            delay: float | None = None
            if blocked is not None:
                delay = self._backoff.next_delay()
                if blocked.retry_after is not None:
                    delay = max(delay, blocked.retry_after)
                logger.warning(
                    "upload failed (%s); %d spooled, retried in %.1fs",
                    blocked.detail,
                    len(await run_blocking(self.spool.entries)),
                    delay,
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _drain(self) -> UploadResult | None:
        """Send entries oldest first; return the failure that stopped us, None when empty.

        No answer at all (network, 408, 429) stops the pass: the cloud is away. A 5xx for one
        entry backs that entry off alone and the pass goes on with the newer ones.
        """
        held: UploadResult | None = None
        for entry in await run_blocking(self.spool.entries):
            if self._stopping:
                return None
            if entry.name in self._in_flight:
                continue
            failures, retry_at = self._entry_retry.get(entry.name, (0, 0.0))
            if retry_at > time.monotonic():
                held = held or UploadResult(UploadOutcome.RETRY, f"{entry.name} backing off")
                continue
            result = await self.deliver(entry)
            if result.outcome is UploadOutcome.RETRY:
                if result.status_code is None or result.status_code < 500:
                    return result
                delay = min(RETRY_BASE_DELAY * 2**failures, ENTRY_MAX_DELAY)
                self._entry_retry[entry.name] = (failures + 1, time.monotonic() + delay)
                logger.warning(
                    "capture %s got %s (%s); retried alone in %.0fs",
                    entry.name,
                    result.status_code,
                    result.detail,
                    delay,
                )
                held = result
                continue
            self._entry_retry.pop(entry.name, None)
            if result.outcome is UploadOutcome.DELIVERED:
                logger.info("spooled capture %s delivered (%s)", entry.name, result.record_id)
            self._backoff.reset()
        return held
