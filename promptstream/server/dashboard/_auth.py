"""Signing in to the dashboard: password hashing, the admin account created on first start, session tokens and
the throttle that makes guessing a password slow.

Passwords are hashed with scrypt (``hashlib.scrypt``, RFC 7914): a memory-hard KDF in the standard library, so the
server needs no compiled dependency (argon2-cffi would be the other standard choice; scrypt resists the same GPU
guessing and is everywhere Python's OpenSSL is). Parameters are stored with each hash, so they can be raised later
without invalidating old passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass

from .._accounts import Accounts

ENV_ADMIN_PASSWORD = "PROMPTSTREAM_ADMIN_PASSWORD"  # noqa: S105 (the variable's name, not a password)
ADMIN_USERNAME = "admin"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # scrypt's cost does not grow with the length, but a form field has to end somewhere

# n=2**15, r=8: 32 MiB and ~0.1 s per hash on one core (OWASP's scrypt minimum is n=2**17 with r=8, p=1 for
# password storage on dedicated hardware; a sign-in is rare and a reference server shares its machine).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password``, with a fresh 16-byte salt.

    Example:
        ```python
        stored = hash_password("correct horse battery staple")
        assert verify_password("correct horse battery staple", stored)
        ```
    """
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=_SCRYPT_MAXMEM,
        dklen=32,
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (a constant-time comparison).

    Example:
        ```python
        assert not verify_password("guess", hash_password("the real one"))
        ```
    """
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(base64.b64decode(expected)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, base64.b64decode(expected))


# verified against when the user does not exist, so an unknown name takes as long as a wrong password
_DUMMY_HASH = f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(bytes(16))}${_b64(bytes(32))}"


def check_login(accounts: Accounts, username: str, password: str) -> dict[str, object] | None:
    """The user whose name and password these are, else None (in about the same time either way)."""
    user = accounts.user_by_name(username)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return user if verify_password(password, str(user["password_hash"])) else None


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable for an account, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password may have at most {MAX_PASSWORD_LENGTH} characters"
    return None


@dataclass(frozen=True)
class AdminSetup:
    """What ``ensure_admin`` did: ``password`` is set only when it generated one (to print once, then forget)."""

    created: bool
    password: str | None = None
    from_environment: bool = False


def ensure_admin(accounts: Accounts, environ: dict[str, str] | None = None) -> AdminSetup:
    """On first start (no account yet) create ``admin``, with the password in PROMPTSTREAM_ADMIN_PASSWORD or a
    generated one returned to be printed once. Raises ValueError for an environment password that is too short.

    Example:
        ```python
        setup = ensure_admin(open_accounts(store))
        if setup.password:
            print("dashboard: sign in as admin with", setup.password)
        ```
    """
    if accounts.user_count() > 0:
        return AdminSetup(created=False)
    env = os.environ if environ is None else environ
    given = env.get(ENV_ADMIN_PASSWORD, "")
    if given:
        problem = password_problem(given)
        if problem is not None:
            raise ValueError(f"{ENV_ADMIN_PASSWORD}: {problem}")
        accounts.create_user(ADMIN_USERNAME, hash_password(given))
        return AdminSetup(created=True, from_environment=True)
    password = secrets.token_urlsafe(18)
    accounts.create_user(ADMIN_USERNAME, hash_password(password))
    return AdminSetup(created=True, password=password)


def new_token() -> tuple[str, str]:
    """A session token for the cookie and the SHA-256 hex the server keeps of it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class LoginThrottle:
    """Failed sign-ins, per user name and per client address: after ``free`` failures within ``window`` seconds,
    each further attempt waits a delay that doubles (up to ``max_delay``), whatever the password. A correct
    password resets the count of its user name. Kept in memory: a restart forgets (it also takes seconds, and an
    attacker gains nothing from it that the doubling delay did not already cost him).

    Example:
        ```python
        throttle = LoginThrottle()
        wait = throttle.wait_needed("admin", "203.0.113.9")  # 0.0 until the free attempts are used up
        ```
    """

    def __init__(self, free: int = 5, window: float = 900.0, max_delay: float = 300.0) -> None:
        self.free = free
        self.window = window
        self.max_delay = max_delay
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def wait_needed(self, username: str, address: str) -> float:
        """Seconds before another attempt for this name or from this address is looked at (0: now)."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in (f"user:{username}", f"addr:{address}"):
                failures = self._recent(key, now)
                if len(failures) >= self.free:
                    delay = min(self.max_delay, 2.0 ** (len(failures) - self.free + 1))
                    wait = max(wait, failures[-1] + delay - now)
        return max(0.0, wait)

    def failed(self, username: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"user:{username}", f"addr:{address}"):
                self._failures.setdefault(key, []).append(now)
                if len(self._failures) > 100_000:  # a flood of names: forget the oldest rather than grow forever
                    self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username}", None)
