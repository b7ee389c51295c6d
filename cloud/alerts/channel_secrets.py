"""Channel URLs and webhook secrets at rest: encrypted with a key derived from the secret key.

A channel URL often holds a credential (a Telegram bot token, an SMTP password) and the
webhook secret must be recoverable to sign each request, so neither can be a one-way hash.
Both are encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under a key derived from
`VISANT_SECRET_KEY`; changing that key makes existing channels undecryptable (recreate them).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

WEBHOOK_SECRET_PREFIX = "whsec_"  # the Standard Webhooks convention
_KEY_CONTEXT = b"visant-alert-channels-v1:"


class SecretUnreadable(Exception):
    """A stored channel secret could not be decrypted (the secret key changed)."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(_KEY_CONTEXT + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: str, ciphertext: str) -> str:
    try:
        return _fernet(secret_key).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("channel secret unreadable: was VISANT_SECRET_KEY changed?") from exc


def new_webhook_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the form `standardwebhooks.Webhook` accepts."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
