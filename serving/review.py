"""The managers' review page: the queue of open flagged cases, a case view and its outcome form.

Server-rendered with Jinja2 (autoescaped: complaint text is untrusted HTML-wise). A manager
signs in with a key; the session cookie is signed and holds only the key's id, and every form
carries a CSRF token tied to the session.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from serving.auth import Principal
from serving.cases import CaseFilter, facets, get_case, list_cases, record_outcome
from serving.cases_api import explanation_for, model_labels, outcome_draft
from serving.db.models import OPEN
from serving.deps import database_reason
from serving.schemas import OutcomeIn
from serving.similar import similar_for_page
from triage.explain import Explanation, highlight_segments

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGE_SIZE = 25

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)
router = APIRouter(prefix="/review", include_in_schema=False)


class SignInRequired(Exception):
    """The visitor has no valid manager session; they are sent to the sign-in form."""


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_valid(request: Request, submitted: str) -> bool:
    expected = request.session.get("csrf")
    return bool(expected) and hmac.compare_digest(expected, submitted or "")


def signed_in(request: Request) -> Principal:
    """The manager this session belongs to; raises SignInRequired otherwise."""
    key_id = request.session.get("key_id")
    if not isinstance(key_id, int):
        raise SignInRequired()
    principal = request.app.state.keyring.by_id(key_id)
    if principal is None or not principal.can("manager"):
        request.session.clear()
        raise SignInRequired()
    return principal


def render(
    request: Request, name: str, context: dict, status_code: int = 200
) -> HTMLResponse:
    context = {"csrf_token": csrf_token(request), **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def safe_next(target: str | None) -> str:
    """Only a path inside the managers' pages is a place to go back to after sign-in."""
    if target and target.startswith(("/review", "/reports")):
        return target
    return "/review"


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "sign_in.html", {"next": safe_next(next), "error": None})


@router.post("/sign-in")
def sign_in(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/review",
) -> Response:
    if not csrf_valid(request, csrf):
        return _form_expired(request, "sign_in.html", {"next": safe_next(next)})

    principal = request.app.state.keyring.authenticate(key.strip()) if key else None
    error = None
    if principal is None:
        error = "That key is not valid: it is unknown or revoked."
    elif not principal.can("manager"):
        error = f"This key's role is {principal.role}; the review page needs a manager or admin key."
    if error:
        context = {"next": safe_next(next), "error": error}
        return render(
            request,
            "sign_in.html",
            context,
            status_code=401 if principal is None else 403,
        )

    request.session.clear()
    request.session["key_id"] = principal.key_id
    logger.info("key %d signed in to the review page", principal.key_id)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/sign-out")
def sign_out(
    request: Request, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    if csrf_valid(request, csrf):
        request.session.clear()
    return RedirectResponse("/review/sign-in", status_code=303)


def _day(value: str | None, name: str) -> tuple[datetime | None, str | None]:
    if not value:
        return None, None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None, f"{name} must be a date like 2026-12-03"
    if not 1900 <= day.year <= 2999:
        return None, f"{name} must be a date between the years 1900 and 2999"
    return datetime.combine(day, time(), UTC), None


@router.get("")
def queue(
    request: Request,
    category: str | None = None,
    model_version: str | None = None,
    since: str | None = None,
    until: str | None = None,
    page: int = 1,
) -> HTMLResponse:
    """Open flagged cases, most likely to escalate first."""
    principal = signed_in(request)
    start, since_error = _day(since, "From")
    end, until_error = _day(until, "To")
    page = max(1, page)
    query = CaseFilter(
        flagged=True,
        status=OPEN,
        category=category or None,
        model_version=model_version or None,
        since=start,
        until=end + timedelta(days=1) if end else None,
        order="escalation",
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    with request.app.state.database.session() as session:
        cases, total = list_cases(session, query)
        options = facets(session)
    filters = {
        "category": category or "",
        "model_version": model_version or "",
        "since": since or "",
        "until": until or "",
    }
    context = {
        "principal": principal,
        "cases": cases,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "filters": filters,
        "options": options,
        "errors": [e for e in (since_error, until_error) if e],
        "query": "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v),
    }
    return render(request, "queue.html", context)


@router.get("/cases/{case_id}")
def case_view(request: Request, case_id: str, saved: int = 0) -> HTMLResponse:
    principal = signed_in(request)
    return _case_page(request, principal, case_id, saved=bool(saved))


def _case_page(
    request: Request,
    principal: Principal,
    case_id: str,
    *,
    saved: bool = False,
    form: dict | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    scorer = request.app.state.scorer
    # Before the page's transaction: the search may store embeddings in its own.
    similar, similar_error = similar_for_page(request.app.state, case_id)
    with request.app.state.database.session() as session, session.begin():
        case = get_case(session, case_id)
        if case is None:
            context = {"principal": principal, "case_id": case_id}
            return render(request, "not_found.html", context, status_code=404)
        explanation, explain_error = None, None
        if scorer is not None:
            try:
                payload = explanation_for(
                    session, case, scorer, request.app.state.settings.explain_seconds
                )
                explanation = Explanation.from_dict(payload)
            except SQLAlchemyError as error:
                explain_error = f"could not be stored: {database_reason(error)}"
        else:
            explain_error = "the model is not loaded yet"

        current = case.outcomes[-1] if case.outcomes else None
        if form is None:
            form = _form_defaults(case, current)
        context = {
            "principal": principal,
            "case": case,
            "segments": highlight_segments(
                case.text, explanation.raised if explanation else []
            ),
            "explanation": explanation,
            "explain_error": explain_error,
            "labels": model_labels(request),
            "latest": case.predictions[-1] if case.predictions else None,
            "current": current,
            "form": form,
            "errors": errors or [],
            "saved": saved,
            "similar": similar,
            "similar_error": similar_error,
        }
        return render(request, "case.html", context, status_code=status_code)


def _form_defaults(case, current) -> dict:
    if current is not None:
        return {
            "escalated": "yes" if current.escalated else "no",
            "category": current.category,
            "root_cause": current.root_cause,
            "resolution": current.resolution,
            "lesson": current.lesson,
        }
    return {
        "escalated": "",
        "category": case.category or "",
        "root_cause": "",
        "resolution": "",
        "lesson": "",
    }


@router.post("/cases/{case_id}/outcome")
def save_outcome(
    request: Request,
    case_id: str,
    escalated: Annotated[str, Form(max_length=10)] = "",
    category: Annotated[str, Form(max_length=1000)] = "",
    root_cause: Annotated[str, Form(max_length=20_000)] = "",
    resolution: Annotated[str, Form(max_length=20_000)] = "",
    lesson: Annotated[str, Form(max_length=20_000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    principal = signed_in(request)
    form = {
        "escalated": escalated,
        "category": category,
        "root_cause": root_cause,
        "resolution": resolution,
        "lesson": lesson,
    }
    if not csrf_valid(request, csrf):
        errors = [
            "The form expired or came from another page; check it and save again."
        ]
        return _case_page(
            request, principal, case_id, form=form, errors=errors, status_code=403
        )

    errors, outcome = _parse_outcome(form)
    if outcome is None:
        return _case_page(
            request, principal, case_id, form=form, errors=errors, status_code=422
        )

    draft = outcome_draft(outcome, request.app.state.redactor)
    with request.app.state.database.session() as session, session.begin():
        case = get_case(session, case_id)
        if case is None:
            context = {"principal": principal, "case_id": case_id}
            return render(request, "not_found.html", context, status_code=404)
        record_outcome(session, case, draft, principal)
    return RedirectResponse(f"/review/cases/{quote(case_id)}?saved=1", status_code=303)


def _parse_outcome(form: dict) -> tuple[list[str], OutcomeIn | None]:
    errors = []
    if form["escalated"] not in ("yes", "no"):
        errors.append("Say whether the case was really escalated: yes or no.")
    values = {**form, "escalated": form["escalated"] == "yes"}
    try:
        outcome = OutcomeIn(**values)
    except ValidationError as error:
        labels = {"category": "Category", "root_cause": "Root cause"}
        labels |= {"resolution": "Resolution", "lesson": "Lesson"}
        for problem in error.errors():
            field = problem["loc"][0] if problem["loc"] else ""
            errors.append(f"{labels.get(field, field)}: {problem['msg']}")
        return errors, None
    return errors, (outcome if not errors else None)


def _form_expired(request: Request, template: str, context: dict) -> HTMLResponse:
    error = "The form expired; it has been reloaded, please submit it again."
    return render(request, template, {**context, "error": error}, status_code=403)
