"""The FastAPI application: scoring routes and health checks.

Run it with ``triage serve`` (uvicorn). The model loads in the app's lifespan, never at import,
so importing this module is cheap and the process never imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.schemas import BatchIn, BatchOut, ComplaintIn, ReadyOut, TriageOut
from serving.settings import Settings, get_settings
from triage.errors import InvalidComplaintError, TriageError
from triage.scorer import Complaint, Scorer
from triage.text import has_readable_text, unicode_problem

logger = logging.getLogger(__name__)


class ModelNotReady(Exception):
    """No model is loaded yet (or loading failed)."""


def current_scorer(request: Request) -> Scorer:
    """The model serving now; 503 until the lifespan has loaded one."""
    loaded = request.app.state.scorer
    if loaded is None:
        raise ModelNotReady()
    return loaded


ScorerDep = Annotated[Scorer, Depends(current_scorer)]


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


def create_app(
    settings: Settings | None = None, scorer: Scorer | None = None
) -> FastAPI:
    """Build the app; `scorer` injects a ready model (tests), otherwise the lifespan loads one."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scorer is not None:
            app.state.scorer = scorer
        else:
            try:
                app.state.scorer = Scorer(
                    settings.model_dir,
                    threads=settings.threads,
                    threshold=settings.escalation_threshold,
                )
            except TriageError as error:
                logger.error("cannot load the model: %s", error)
                raise
        logger.info("serving model %s", app.state.scorer.version)
        yield
        app.state.scorer = None

    app = FastAPI(
        title="triage",
        summary="Escalation likelihood and failure category for customer complaints.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.scorer = None
    app.state.settings = settings

    @app.exception_handler(ModelNotReady)
    async def _not_ready(_: Request, __: ModelNotReady) -> JSONResponse:
        return JSONResponse(
            {"detail": "the model is not loaded yet; retry shortly"}, status_code=503
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
        items: Sequence[ComplaintIn], scorer: Scorer, prefix: tuple
    ) -> list[TriageOut]:
        errors = _limit_errors(items, settings, prefix)
        if errors:
            raise RequestValidationError(errors)
        predictions = scorer.score([Complaint(i.text, i.metadata) for i in items])
        logger.debug(
            "scored %d complaints in %d chunks",
            len(items),
            sum(p.chunks for p in predictions),
        )
        return [TriageOut.from_prediction(p) for p in predictions]

    @app.post("/v1/triage", response_model=TriageOut)
    def triage(complaint: ComplaintIn, scorer: ScorerDep) -> TriageOut:
        """Score one complaint."""
        return score([complaint], scorer, ())[0]

    @app.post("/v1/triage/batch", response_model=BatchOut)
    def triage_batch(batch: BatchIn, scorer: ScorerDep) -> BatchOut:
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
        return BatchOut(results=score(batch.items, scorer, ("items",)))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=ReadyOut)
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
            "threshold": loaded.threshold,
            "categories": manifest.categories,
            "escalation_label": manifest.escalation_proxy,
            "metadata_keys": manifest.metadata_keys,
            "max_tokens": manifest.max_tokens,
        }
        body = ReadyOut(status="ready", model_version=loaded.version, details=details)
        return JSONResponse(body.model_dump())

    return app
