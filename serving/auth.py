"""API keys and roles.

A key is shown once, when it is created; the database keeps its SHA-256 and a short public
prefix to find it by. Keys are 256-bit random strings, so a fast hash is the right one (there is
nothing to brute-force), and comparison is constant-time. Roles nest: a manager may do what a
caller does, an admin what a manager does.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from serving.db.engine import Database
from serving.db.models import ROLES, ApiKey, utcnow

logger = logging.getLogger(__name__)

KEY_SCHEME = "trg"
RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its name (shown as the reviewer) and its role.

    `rate_limit` is the key's own requests-per-minute limit (None: the service default,
    0: unlimited, for keys that load tests use).
    """

    key_id: int
    name: str
    role: str
    rate_limit: int | None = None

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its public prefix, e.g. `trg_3f9c2a71b0d4_<43 random characters>`."""
    prefix = secrets.token_hex(6)
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1]:
        return None
    return parts[1]


def create_key(
    session: Session, name: str, role: str, rate_limit: int | None = None
) -> tuple[ApiKey, str]:
    """Store a new key; returns the row and the key itself, which is never stored."""
    if rate_limit is not None and not 0 <= rate_limit <= 1_000_000:
        raise ValueError("a rate limit is 0 (none) to 1,000,000 requests per minute")
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise ValueError(
            "a key needs a name of 1 to 200 characters (who or what uses it)"
        )

    key, prefix = new_key()
    row = ApiKey(
        name=name,
        role=role,
        prefix=prefix,
        key_hash=hash_key(key),
        rate_limit_per_minute=rate_limit,
    )
    session.add(row)
    session.flush()
    logger.info("created %s key %d (%s)", role, row.id, name)
    return row, key


def revoke_key(session: Session, key_id: int) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        logger.info("revoked key %d (%s)", row.id, row.name)
    return row


class KeyRing:
    """Checks presented keys against the database, remembering good ones for a short while.

    The memory keeps scoring from waiting on the database for every request; a revoked key
    stops working within `cache_seconds`. While the database cannot be reached, keys already
    seen keep working, however long ago they were checked.
    """

    def __init__(self, database: Database, cache_seconds: float = 30.0) -> None:
        self.database = database
        self.cache_seconds = cache_seconds
        self._known: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, key: str) -> Principal | None:
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            known = self._known.get(digest)
        if known is not None and now - known[1] < self.cache_seconds:
            return known[0]

        try:
            principal = self._lookup(key, digest)
        except SQLAlchemyError:
            if known is None:
                raise
            # The database is down: a key this process has seen keeps working, so scoring
            # goes on through an outage (a key revoked meanwhile works until it is back).
            logger.debug("database unreachable; accepting a remembered key")
            return known[0]
        with self._lock:
            if principal is None:
                self._known.pop(digest, None)
            else:
                self._known[digest] = (principal, now)
        return principal

    def by_id(self, key_id: int) -> Principal | None:
        """The principal of a live key (a signed-in session names its key by id)."""
        with self.database.session() as session:
            row = session.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return None
            return _principal(row)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()

    def _lookup(self, key: str, digest: str) -> Principal | None:
        prefix = key_prefix(key)
        if prefix is None:
            return None
        with self.database.session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.key_hash, digest):
                return None
            return _principal(row)


def _principal(row: ApiKey) -> Principal:
    return Principal(row.id, row.name, row.role, row.rate_limit_per_minute)


class RateLimiter:
    """Requests per minute per key, as a token bucket in this process's memory.

    Several server processes each keep their own buckets, so the effective limit is per
    process; a key with limit 0 is never limited.
    """

    def __init__(self, default_per_minute: int) -> None:
        self.default = default_per_minute
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, principal: Principal) -> float | None:
        """None if the request may go ahead, else the seconds until it may."""
        limit = (
            principal.rate_limit if principal.rate_limit is not None else self.default
        )
        if limit <= 0:
            return None
        rate = limit / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(principal.key_id, (float(limit), now))
            tokens = min(float(limit), tokens + (now - then) * rate)
            if tokens < 1.0:
                self._buckets[principal.key_id] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[principal.key_id] = (tokens - 1.0, now)
            return None


def ensure_local_key(database: Database, path: Path) -> tuple[str, bool]:
    """The key in `path`, creating an admin key there (mode 0600) when none works yet.

    This is the newcomer's first key; returns the key and whether it was created now.
    """
    if path.exists():
        key = path.read_text().strip()
        if KeyRing(database, cache_seconds=0).authenticate(key) is not None:
            return key, False
        logger.info(
            "the key in %s is not valid for this database; writing a new one", path
        )
        path.unlink()

    with database.session() as session, session.begin():
        _, key = create_key(session, "local", "admin")
    write_secret(path, key)
    return key, True


def write_secret(path: Path, secret: str) -> None:
    """Write `secret` to a new file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
