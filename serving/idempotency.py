"""Safe retries: a write sent with an `Idempotency-Key` header happens once.

The answer to the first request is stored in the same transaction as the write itself, so
either both are there or neither is. A retry with the same key and the same body gets the
stored answer; the same key with a different body is refused, since the client has mixed up
two requests.
"""

from __future__ import annotations

import hashlib
import json
import re

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.auth import Principal
from serving.db.models import IdempotencyRecord

HEADER = "Idempotency-Key"
VALID = re.compile(r"[\x21-\x7e]{1,200}")


def checked(key: str | None, principal: Principal | None) -> str | None:
    """The request's `Idempotency-Key` header, checked; None when the client sent none."""
    if key is None:
        return None
    if not VALID.fullmatch(key):
        raise HTTPException(
            422,
            f"{HEADER} must be 1-200 visible ASCII characters, e.g. a UUID",
        )
    if principal is None:
        raise HTTPException(422, f"{HEADER} needs an API key to scope it; send one")
    return key


def body_digest(body: object) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
    ).hexdigest()


def replay(
    session: Session, principal: Principal, key: str, route: str, digest: str
) -> IdempotencyRecord | None:
    """The stored answer to an earlier request with this key, if there was one."""
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.key_id == principal.key_id,
            IdempotencyRecord.idempotency_key == key,
        )
    )
    if record is None:
        return None
    if record.route != route or record.request_sha256 != digest:
        raise HTTPException(
            422,
            f"this {HEADER} was used for a different request; use a new key for a new "
            "request, and the same key only to retry the same one",
        )
    return record


def remember(
    session: Session,
    principal: Principal,
    key: str,
    route: str,
    digest: str,
    status_code: int,
    response: dict,
) -> None:
    session.add(
        IdempotencyRecord(
            key_id=principal.key_id,
            idempotency_key=key,
            route=route,
            request_sha256=digest,
            status_code=status_code,
            response=response,
        )
    )
    session.flush()
