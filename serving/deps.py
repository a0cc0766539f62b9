"""Request dependencies: the database, the caller's key and role checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from serving.auth import KeyRing, Principal
from serving.db.engine import Database
from serving.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `triage keys create`, sent as `Authorization: Bearer <key>`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class DatabaseUnavailable(Exception):
    """The cases database cannot be reached; `reason` says why without any stored data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def database_reason(error: SQLAlchemyError) -> str:
    """A short, loggable reason for a database error: the driver's message, never the
    statement or its parameters (those hold complaint text)."""
    original = getattr(error, "orig", None) or error
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first_line[:200]}"


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_settings_of(request: Request) -> Settings:
    return request.app.state.settings


def _keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


def presented_principal(request: Request, credentials: Credentials) -> Principal | None:
    """The caller named by the Bearer key, None without one; 401 for a key that is wrong."""
    if credentials is None:
        return None
    try:
        principal = _keyring(request).authenticate(credentials.credentials)
    except SQLAlchemyError as error:
        raise DatabaseUnavailable(database_reason(error)) from None
    if principal is None:
        raise HTTPException(
            401,
            "the API key is not valid: it is unknown or revoked; create one with "
            "`triage keys create --role ROLE --name NAME`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = request.app.state.rate_limiter.retry_after(principal)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"this key is over its rate limit; retry in {seconds} s (limits are set per key "
            "with `triage keys create --rate-limit`, default TRIAGE_RATE_LIMIT_PER_MINUTE)",
            headers={"Retry-After": str(seconds)},
        )
    return principal


def require(role: str) -> Callable[..., Principal]:
    """A dependency that admits keys of `role` or above: 401 without a key, 403 below it."""

    def dependency(
        principal: Annotated[Principal | None, Depends(presented_principal)],
    ) -> Principal:
        if principal is None:
            raise HTTPException(
                401,
                "this route needs an API key: send `Authorization: Bearer <key>`; create "
                "one with `triage keys create --role ROLE --name NAME`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.can(role):
            raise HTTPException(
                403,
                f"this key's role is {principal.role}; this route needs {role} or above",
            )
        return principal

    return dependency


def scoring_principal(
    request: Request,
    principal: Annotated[Principal | None, Depends(presented_principal)],
) -> Principal | None:
    """Scoring needs a caller key unless the service was opened with
    TRIAGE_SCORING_REQUIRES_KEY=false."""
    if request.app.state.settings.scoring_requires_key:
        return require("caller")(principal)
    return principal


Manager = Annotated[Principal, Depends(require("manager"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Caller = Annotated[Principal | None, Depends(scoring_principal)]
DatabaseDep = Annotated[Database, Depends(get_database)]
