"""The FastAPI application: scoring, cases, the review page and health checks.

Run it with ``triage serve`` (uvicorn). The model and the database open in the app's lifespan,
never at import, so importing this module is cheap and the process never imports torch.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import BackgroundTasks, Depends, FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from serving import cases_api, models_api, reports_routes, review
from serving.auth import KeyRing, Principal, RateLimiter
from serving.batching import BatcherStopped, MicroBatcher
from serving.cases import CaseRecord, record_cases, record_shadow
from serving.db.engine import Database
from serving.deps import Caller, DatabaseUnavailable, database_reason
from serving.holder import ModelHolder, run_layout
from serving.idempotency import body_digest, checked, remember, replay
from serving.schemas import BatchIn, BatchOut, ComplaintIn, ReadyOut, TriageOut
from serving.settings import Settings, get_settings
from triage.cpu import available_cpus
from triage.errors import InvalidComplaintError, TriageError
from triage.redaction import Redactor
from triage.scorer import Complaint, Prediction, Scorer
from triage.text import has_readable_text, unicode_problem

logger = logging.getLogger(__name__)


# The page loads only its own files, cannot be framed, and leaks no URLs to other sites.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class BodyLimit:
    """Refuse a request body over `max_bytes` with a 413 before reading the rest of it, so
    one client cannot make the server buffer hundreds of megabytes (a declared
    Content-Length is checked at once; a chunked body is counted as it arrives)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.max_bytes
        ):
            await self._refuse(send)
            return

        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await self._refuse(send)

    async def _refuse(self, send) -> None:
        response = JSONResponse(
            {
                "detail": f"the request body is over {self.max_bytes} bytes "
                "(TRIAGE_MAX_BODY_BYTES); send smaller batches"
            },
            status_code=413,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLarge(Exception):
    pass


class ModelNotReady(Exception):
    """No model is loaded yet (or loading failed)."""


def current_scorer(request: Request) -> Scorer:
    """The model serving now; 503 until the lifespan has loaded one."""
    loaded = request.app.state.scorer
    if loaded is None:
        raise ModelNotReady()
    return loaded


ScorerDep = Annotated[Scorer, Depends(current_scorer)]
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="With `case_id` or `record`, send the same key again to retry safely: "
        "the case is stored once and the retry gets the first answer.",
    ),
]


def _limit_errors(
    items: Sequence[ComplaintIn], settings: Settings, prefix: tuple
) -> list[dict]:
    """Check the configurable limits that the schema cannot know; returns FastAPI-style errors."""
    errors = []
    for index, item in enumerate(items):
        loc = (*prefix, index) if prefix else ()
        if not has_readable_text(item.text):
            errors.append(
                _error(
                    (*loc, "text"),
                    "text has nothing to read (empty, spaces, control or zero-width characters); "
                    "send the complaint's words",
                )
            )
        elif len(item.text) > settings.max_text_chars:
            errors.append(
                _error(
                    (*loc, "text"),
                    f"text has {len(item.text)} characters; at most {settings.max_text_chars} are "
                    "accepted (TRIAGE_MAX_TEXT_CHARS)",
                )
            )
        problem = unicode_problem(item.text)
        if problem:
            errors.append(_error((*loc, "text"), f"text {problem}"))
        metadata = item.metadata or {}
        if len(metadata) > settings.max_metadata_keys:
            errors.append(
                _error(
                    (*loc, "metadata"),
                    f"metadata has {len(metadata)} keys; at most {settings.max_metadata_keys}",
                )
            )
        for key, value in metadata.items():
            if len(key) > settings.max_metadata_key_chars:
                problem = f"a metadata key has {len(key)} characters; at most {settings.max_metadata_key_chars}"
                errors.append(_error((*loc, "metadata"), problem))
            elif unicode_problem(key):
                problem = f"a metadata key {unicode_problem(key)}"
                errors.append(_error((*loc, "metadata"), problem))
            elif isinstance(value, str) and unicode_problem(value):
                problem = f"metadata value {unicode_problem(value)}"
                errors.append(_error((*loc, "metadata", key), problem))
            elif (
                isinstance(value, str)
                and len(value) > settings.max_metadata_value_chars
            ):
                errors.append(
                    _error(
                        (*loc, "metadata", key),
                        f"value has {len(value)} characters; at most "
                        f"{settings.max_metadata_value_chars}",
                    )
                )
    return errors


def _error(loc: tuple, message: str) -> dict:
    return {"loc": ["body", *loc], "msg": message, "type": "value_error"}


def _printable(part: object) -> object:
    """A location part safe to encode as JSON (keys may hold unpaired surrogates)."""
    if isinstance(part, str):
        return part.encode("utf-8", "backslashreplace").decode("utf-8")
    return part


def _public_errors(errors: Sequence[dict]) -> list[dict]:
    """Validation errors without the offending input: it is complaint text (personal data,
    possibly megabytes, possibly not encodable), and the location already says where."""
    return [
        {
            "loc": [_printable(p) for p in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in errors
    ]


def open_database(settings: Settings) -> Database:
    """The cases database, migrated to the current schema when TRIAGE_AUTO_MIGRATE is on."""
    database = Database(settings.resolved_database_url)
    if settings.auto_migrate:
        database.upgrade()
    logger.info("cases database: %s", database.url.render_as_string(hide_password=True))
    return database


@dataclass(frozen=True)
class RetryGuard:
    """A recording request's Idempotency-Key: its answer is stored with the cases it
    created, and a retry gets that answer instead of a second prediction."""

    principal: Principal
    key: str
    route: str
    digest: str


def retry_guard(
    header: str | None, principal: Principal | None, route: str, body: BaseModel
) -> RetryGuard | None:
    key = checked(header, principal)
    if key is None:
        return None
    return RetryGuard(principal, key, route, body_digest(body.model_dump()))


def replayed(app: FastAPI, guard: RetryGuard | None) -> JSONResponse | None:
    """The stored answer to an earlier try of this request, if any (None if the database
    cannot say: the request is then scored as new)."""
    if guard is None:
        return None
    try:
        with app.state.database.session() as session:
            earlier = replay(
                session, guard.principal, guard.key, guard.route, guard.digest
            )
    except SQLAlchemyError as error:
        logger.warning("cannot look up an idempotency key: %s", database_reason(error))
        return None
    return JSONResponse(earlier.response, earlier.status_code) if earlier else None


def store_cases(
    app: FastAPI,
    items: Sequence[ComplaintIn],
    predictions: Sequence[Prediction],
    principal: Principal | None,
    results: list[TriageOut],
    answer: Callable[[list[TriageOut]], BaseModel],
    guard: RetryGuard | None = None,
) -> None:
    """Store the items that asked to be recorded, all in one transaction (with the answer,
    when the request carries an Idempotency-Key).

    A database failure does not fail the request: the predictions are still answered, with
    `recorded: false` and the reason, so call software keeps getting scores.
    """
    wanted = [i for i, item in enumerate(items) if item.wants_record]
    if not wanted:
        return
    records = [
        CaseRecord(items[i].case_id, items[i].text, items[i].metadata, predictions[i])
        for i in wanted
    ]

    def write(session: Session) -> None:
        case_ids = record_cases(session, records, app.state.redactor, principal)
        for i, case_id in zip(wanted, case_ids, strict=True):
            results[i].case_id, results[i].recorded = case_id, True
        if guard is not None:
            body = answer(results).model_dump(mode="json")
            remember(
                session,
                guard.principal,
                guard.key,
                guard.route,
                guard.digest,
                200,
                body,
            )

    try:
        _in_transaction_with_retry(app.state.database, write)
    except SQLAlchemyError as error:
        reason = database_reason(error)
        logger.warning("could not store %d cases: %s", len(records), reason)
        for i in wanted:
            results[i].case_id = items[i].case_id
            results[i].recorded = False
            results[i].record_error = f"the case was not stored: {reason}"


def _in_transaction_with_retry(
    database: Database, write: Callable[[Session], None]
) -> None:
    # Two requests creating the same new case id race on its primary key; the loser's
    # second attempt finds the case and adds its prediction to it.
    for attempt in (1, 2):
        try:
            with database.session() as session, session.begin():
                write(session)
            return
        except IntegrityError:
            if attempt == 2:
                raise
            logger.debug("case id collision while storing; retrying once")


def shadow_score(
    app: FastAPI,
    shadow: Scorer,
    items: Sequence[ComplaintIn],
    predictions: Sequence[Prediction],
    results: Sequence[TriageOut],
) -> None:
    """Score the request again with the challenger and store both answers; after the
    response, so the caller never waits for it. Failures are logged, never raised."""
    try:
        challenged = shadow.score([Complaint(i.text, i.metadata) for i in items])
        with app.state.database.session() as session, session.begin():
            record_shadow(session, items, predictions, challenged, results)
    except (TriageError, SQLAlchemyError) as error:
        reason = database_reason(error) if isinstance(error, SQLAlchemyError) else error
        logger.warning("shadow scoring with %s failed: %s", shadow.version, reason)


def _database_status(database: Database) -> dict:
    """The cases database as `/readyz` reports it: scoring goes on while it is degraded."""
    problem = database.check()
    status = {
        "backend": database.backend,
        "status": "ok" if problem is None else "degraded",
    }
    if problem is not None:
        status["reason"] = problem
        status["effect"] = "scores are answered but not recorded (recorded: false)"
    return status


def _holder_status(app: FastAPI) -> dict:
    status = app.state.holder.status
    return {
        "last_check_at": status.last_check_at.isoformat()
        if status.last_check_at
        else None,
        "last_swap_at": status.last_swap_at.isoformat()
        if status.last_swap_at
        else None,
        "last_error": status.last_error,
        "shadow_version": status.shadow_version,
        "poll_seconds": app.state.settings.registry_poll_seconds,
    }


def create_app(
    settings: Settings | None = None,
    scorer: Scorer | None = None,
    watch_registry: bool = True,
) -> FastAPI:
    """Build the app; `scorer` injects a ready model (tests, Ray Serve), otherwise the
    lifespan loads one. Without `watch_registry` the app keeps its model until restarted:
    on Ray Serve a new champion is rolled out by redeploying the scorer replicas."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = open_database(settings)
        app.state.keyring = KeyRing(app.state.database, settings.key_cache_seconds)
        app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        holder = app.state.holder = ModelHolder(app, settings)
        try:
            holder.start(injected=scorer)
        except TriageError as error:
            logger.error("cannot load the model: %s", error)
            raise
        logger.info("serving model %s", app.state.scorer.version)
        app.state.batcher = open_batcher(settings)
        watcher = asyncio.create_task(holder.watch()) if watch_registry else None
        yield
        if watcher is not None:
            watcher.cancel()
        if app.state.batcher is not None:
            app.state.batcher.stop()
        app.state.scorer = app.state.shadow = app.state.batcher = None
        app.state.database.dispose()

    app = FastAPI(
        title="triage",
        summary="Escalation likelihood and failure category for customer complaints.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.scorer = app.state.shadow = app.state.batcher = None
    app.state.settings = settings
    app.state.swaps_models = watch_registry
    app.state.redactor = Redactor(settings.redact_kinds) if settings.redact else None
    app.add_middleware(
        SessionMiddleware,
        secret_key=_session_secret(settings),
        session_cookie="triage_session",
        max_age=12 * 3600,
        same_site="strict",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.mount("/static", StaticFiles(directory=review.STATIC), name="static")
    app.include_router(cases_api.router)
    app.include_router(models_api.router)
    app.include_router(review.router)
    app.include_router(reports_routes.router)

    @app.middleware("http")
    async def _refuse_nul_in_urls(request: Request, call_next) -> Response:
        # No id, label or version holds a NUL; PostgreSQL could not even compare one.
        if "%00" in request.url.path + "?" + request.url.query:
            return JSONResponse(
                {"detail": "the URL contains a NUL character (%00); remove it"},
                status_code=400,
            )
        return await call_next(request)

    @app.middleware("http")
    async def _page_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(("/review", "/reports", "/static")):
            response.headers.update(PAGE_HEADERS)
        return response

    @app.exception_handler(review.SignInRequired)
    async def _sign_in(request: Request, _: review.SignInRequired) -> Response:
        target = request.url.path + (
            f"?{request.url.query}" if request.url.query else ""
        )
        return RedirectResponse(
            f"/review/sign-in?next={quote(target, safe='')}", status_code=303
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _database_unavailable(
        _: Request, error: DatabaseUnavailable
    ) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"the cases database is unavailable ({error.reason}); retry later"
            },
            status_code=503,
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(_: Request, error: SQLAlchemyError) -> JSONResponse:
        reason = database_reason(error)
        logger.error("database error: %s", reason)
        return JSONResponse(
            {"detail": f"the cases database failed ({reason}); retry later"},
            status_code=503,
        )

    @app.exception_handler(ModelNotReady)
    async def _not_ready(_: Request, __: ModelNotReady) -> JSONResponse:
        return JSONResponse(
            {"detail": "the model is not loaded yet; retry shortly"}, status_code=503
        )

    @app.exception_handler(BatcherStopped)
    async def _stopping(_: Request, __: BatcherStopped) -> JSONResponse:
        return JSONResponse(
            {"detail": "the service is shutting down; retry on another instance"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(
        request: Request, error: RequestValidationError
    ) -> JSONResponse:
        detail = _public_errors(error.errors())
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type:
            detail.insert(
                0,
                _error(
                    (),
                    f"send the body as JSON with content-type: application/json (got {content_type or 'none'!r})",
                ),
            )
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # FastAPI reports a body it cannot decode as a bare "error parsing the body"; say why.
        if error.status_code == 400 and isinstance(error.__cause__, _BodyTooLarge):
            detail = (
                f"the request body is over {settings.max_body_bytes} bytes "
                "(TRIAGE_MAX_BODY_BYTES); send smaller batches"
            )
            return JSONResponse({"detail": detail}, status_code=413)
        if error.status_code == 400 and isinstance(error.__cause__, UnicodeError):
            detail = (
                "the request body is not valid Unicode JSON: it holds invalid UTF-8 bytes or an "
                "unpaired surrogate escape (such as \\ud800); send UTF-8 encoded JSON of valid text"
            )
            return JSONResponse({"detail": detail}, status_code=400)
        return await http_exception_handler(request, error)

    @app.exception_handler(InvalidComplaintError)
    async def _invalid(_: Request, error: InvalidComplaintError) -> JSONResponse:
        return JSONResponse({"detail": [_error((), str(error))]}, status_code=422)

    def score(
        items: Sequence[ComplaintIn],
        scorer: Scorer,
        prefix: tuple,
        principal: Principal | None,
        background: BackgroundTasks,
        answer: Callable[[list[TriageOut]], BaseModel],
        guard: RetryGuard | None = None,
    ) -> list[TriageOut]:
        errors = _limit_errors(items, settings, prefix)
        if errors:
            raise RequestValidationError(errors)
        complaints = [Complaint(i.text, i.metadata) for i in items]
        batcher: MicroBatcher | None = app.state.batcher
        if batcher is None:
            predictions = scorer.score(complaints)
        else:
            predictions = batcher.score(scorer, complaints)
        logger.debug(
            "scored %d complaints in %d chunks",
            len(items),
            sum(p.chunks for p in predictions),
        )
        results = [TriageOut.from_prediction(p) for p in predictions]
        store_cases(app, items, predictions, principal, results, answer, guard)
        if app.state.shadow is not None:
            background.add_task(
                shadow_score, app, app.state.shadow, items, predictions, results
            )
        return results

    @app.post("/v1/triage", response_model=TriageOut, tags=["scoring"])
    def triage(
        complaint: ComplaintIn,
        scorer: ScorerDep,
        principal: Caller,
        background: BackgroundTasks,
        idempotency_key: IdempotencyHeader = None,
    ) -> TriageOut:
        """Score one complaint; with `case_id` or `record: true`, also store it as a case."""
        guard = None
        if complaint.wants_record:
            guard = retry_guard(idempotency_key, principal, "triage", complaint)
        earlier = replayed(app, guard)
        if earlier is not None:
            return earlier
        return score(
            [complaint], scorer, (), principal, background, lambda r: r[0], guard
        )[0]

    @app.post("/v1/triage/batch", response_model=BatchOut, tags=["scoring"])
    def triage_batch(
        batch: BatchIn,
        scorer: ScorerDep,
        principal: Caller,
        background: BackgroundTasks,
        idempotency_key: IdempotencyHeader = None,
    ) -> BatchOut:
        """Score several complaints; one invalid item rejects the whole batch."""
        if len(batch.items) > settings.max_batch_items:
            raise RequestValidationError(
                [
                    _error(
                        ("items",),
                        f"batch has {len(batch.items)} items; at most {settings.max_batch_items} are "
                        "accepted (TRIAGE_MAX_BATCH_ITEMS)",
                    )
                ]
            )
        characters = sum(len(item.text) for item in batch.items)
        if characters > settings.max_batch_chars:
            raise RequestValidationError(
                [
                    _error(
                        ("items",),
                        f"batch holds {characters} characters of text; at most "
                        f"{settings.max_batch_chars} are accepted in one request "
                        "(TRIAGE_MAX_BATCH_CHARS): split it",
                    )
                ]
            )
        guard = None
        if any(item.wants_record for item in batch.items):
            guard = retry_guard(idempotency_key, principal, "triage/batch", batch)
        earlier = replayed(app, guard)
        if earlier is not None:
            return earlier
        results = score(
            batch.items,
            scorer,
            ("items",),
            principal,
            background,
            lambda r: BatchOut(results=r),
            guard,
        )
        return BatchOut(results=results)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=ReadyOut, tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        """200 once the model is loaded, with what is serving; 503 before."""
        loaded: Scorer | None = request.app.state.scorer
        if loaded is None:
            return JSONResponse(
                ReadyOut(status="loading").model_dump(), status_code=503
            )
        manifest = loaded.bundle.manifest
        details = {
            "model_dir": str(loaded.bundle.path),
            "threads": loaded.threads,
            "max_concurrent_runs": loaded.max_concurrent_runs,
            "cpus_available": available_cpus(),
            "micro_batching": request.app.state.batcher.details()
            if request.app.state.batcher is not None
            else None,
            "threshold": loaded.threshold,
            "categories": manifest.categories,
            "escalation_label": manifest.escalation_proxy,
            "metadata_keys": manifest.metadata_keys,
            "max_tokens": manifest.max_tokens,
            "database": _database_status(request.app.state.database),
            "model_swaps": _holder_status(request.app),
            "redaction": settings.redact_kinds if settings.redact else [],
        }
        body = ReadyOut(status="ready", model_version=loaded.version, details=details)
        return JSONResponse(body.model_dump())

    return app


def open_batcher(settings: Settings) -> MicroBatcher | None:
    if not settings.micro_batching:
        logger.info("micro-batching is off: every request runs the model on its own")
        return None
    runs, _ = run_layout(settings)
    return MicroBatcher(
        runners=runs,
        max_batch_tokens=settings.batch_tokens,
        max_wait=settings.batch_wait_ms / 1000,
    )


def _session_secret(settings: Settings) -> str:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    logger.info(
        "TRIAGE_SESSION_SECRET is not set: review page sign-ins last until the process "
        "restarts"
    )
    return secrets.token_urlsafe(32)
