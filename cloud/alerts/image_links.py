"""Signed, expiring links to a capture's snapshot, for webhook receivers that hold no token.

The link is `/v1/alert-images/{capture_id}?expires=<epoch s>&sig=<hex>`; the signature is an
HMAC of the capture id and expiry under the server's secret key, so it cannot be forged or
extended, and it stops working at `expires`.
"""

from __future__ import annotations

import hashlib
import hmac

IMAGE_PATH = "/v1/alert-images/"
_CONTEXT = "visant-alert-image-v1"


def _signature(secret_key: str, capture_id: str, expires: int) -> str:
    message = f"{_CONTEXT}:{capture_id}:{expires}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def signed_image_url(
    base_url: str, secret_key: str, capture_id: str, now_epoch: float, ttl_seconds: int
) -> str:
    expires = int(now_epoch) + ttl_seconds
    sig = _signature(secret_key, capture_id, expires)
    return f"{base_url.rstrip('/')}{IMAGE_PATH}{capture_id}?expires={expires}&sig={sig}"


def image_link_valid(
    secret_key: str, capture_id: str, expires: int, sig: str, now_epoch: float
) -> bool:
    """True when `sig` is ours for this capture and expiry, and the expiry has not passed."""
    if expires < now_epoch:
        return False
    return hmac.compare_digest(_signature(secret_key, capture_id, expires), sig)
