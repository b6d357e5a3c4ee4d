"""API keys of projects: how one is made, recognised and kept.

A key is ``ps_live_<key id>_<secret>``: the prefix (``ps_live_`` and the key id) is what lists show, so a team
recognises a key in a config file or a leak report; the secret part is 32 random bytes (256 bits) from ``secrets``.
The server keeps only the SHA-256 of the whole key. A slow password hash (bcrypt, scrypt, Argon2) exists to make
guessing a low-entropy password expensive; a 256-bit random key cannot be guessed at any speed, so a fast hash loses
nothing, lets authentication find the key by an index on its hash, and costs a microsecond per request.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ps_live_"
DEFAULT_PROJECT_ID = "default"  # the project of the keys given by --api-key / PROMPTSTREAM_SERVER_API_KEYS
# A key's last_used_at is written at most this often (seconds): authentication reads the database on every request
# but writes to it only when the stored time is older than this, never once per request.
LAST_USED_RESOLUTION = 60.0
MAX_KEY_LENGTH = 200  # longer tokens are never ours; not worth a database read


def new_key() -> tuple[str, str, str]:
    """A new key: (key id, prefix, the whole secret key). The secret is shown once and never stored.

    Example:
        ```python
        key_id, prefix, secret = new_key()
        assert secret.startswith(prefix + "_")
        ```
    """
    key_id = secrets.token_hex(6)
    prefix = f"{KEY_PREFIX}{key_id}"
    return key_id, prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def secret_hash(secret: str) -> str:
    """The form in which a key is stored and looked up.

    Example:
        ```python
        assert len(secret_hash("ps_live_0123456789ab_x")) == 64
        ```
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def may_be_stored_key(token: str) -> bool:
    """Whether ``token`` could be a key made by ``new_key`` (only those are looked up in the database).

    Example:
        ```python
        assert not may_be_stored_key("ps_dev_abc")
        ```
    """
    return token.startswith(KEY_PREFIX) and len(token) <= MAX_KEY_LENGTH
