"""Secrets: password hashing (scrypt), random keys and tokens stored only as hashes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")

DEVICE_KEY_PREFIX = "vsk_"
USER_TOKEN_PREFIX = "vut_"
_SCRYPT_N = 2**14  # ~50 ms per hash on a laptop core: slow for brute force, fine for logins
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_LEN = 32


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN
    )
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encoded[0]}${encoded[1]}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest_b64)
    actual = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt_b64),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def new_secret(prefix: str) -> str:
    """A random high-entropy secret (256 bits) with a recognisable prefix."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str, pepper: str) -> str:
    """Keyed hash of a high-entropy secret; stored instead of the secret itself."""
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def secrets_match(stored_hash: str, secret: str, pepper: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_secret(secret, pepper))


_password_pool: ThreadPoolExecutor | None = None
DEFAULT_PASSWORD_THREADS = 2


async def in_password_pool(
    function: Callable[..., _T], *args: object, threads: int = DEFAULT_PASSWORD_THREADS
) -> _T:
    """Run scrypt work on its own small pool (created on first use with `threads` threads).

    A login flood queues here and never in the default pool that snapshot writes use.
    """
    global _password_pool
    if _password_pool is None:
        _password_pool = ThreadPoolExecutor(threads, thread_name_prefix="scrypt")
    return await asyncio.get_running_loop().run_in_executor(_password_pool, function, *args)
