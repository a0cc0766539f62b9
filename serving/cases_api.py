"""The cases API: stored cases, their outcomes and why they were flagged; and API keys."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from serving.auth import create_key, revoke_key
from serving.cases import (
    CaseFilter,
    OutcomeDraft,
    cached_explanation,
    get_case,
    list_cases,
    record_outcome,
    store_explanation,
)
from serving.db.models import ApiKey, Case, Outcome
from serving.deps import Admin, DatabaseDep, Manager
from serving.idempotency import body_digest, checked, remember, replay
from serving.schemas import (
    CASE_ID,
    CASE_ID_RULE,
    CaseOut,
    CasePageOut,
    CaseSummaryOut,
    ExplanationOut,
    KeyIn,
    KeyOut,
    LabelOut,
    NewKeyOut,
    OutcomeIn,
    OutcomeOut,
    PredictionOut,
)
from triage.explain import explain
from triage.redaction import Redactor
from triage.scorer import Complaint, Scorer

logger = logging.getLogger(__name__)

router = APIRouter()
CaseId = Annotated[
    str,
    Path(
        pattern=f"^{CASE_ID.pattern}$",
        max_length=128,
        description=f"The case's id: {CASE_ID_RULE}.",
    ),
]


def _utc(moment: datetime | None) -> datetime | None:
    """A filter bound without an offset is read as UTC, the zone cases are stored in."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def case_not_found(case_id: str) -> HTTPException:
    return HTTPException(
        404,
        f"no case {case_id!r}: cases are stored by scoring with `case_id` or "
        "`record: true`",
    )


def summary_out(case: Case) -> CaseSummaryOut:
    return CaseSummaryOut(
        case_id=case.id,
        status=case.status,
        flagged=case.flagged,
        escalation_probability=case.escalation_probability,
        category=case.category,
        model_version=case.model_version,
        created_at=case.created_at,
        updated_at=case.updated_at,
        resolved_at=case.resolved_at,
    )


def outcome_out(outcome: Outcome, labels: list[str]) -> OutcomeOut:
    return OutcomeOut(
        revision=outcome.revision,
        escalated=outcome.escalated,
        category=outcome.category,
        new_category=outcome.category not in labels,
        root_cause=outcome.root_cause,
        resolution=outcome.resolution,
        lesson=outcome.lesson,
        reviewer=outcome.reviewer,
        recorded_at=outcome.created_at,
        changed=outcome.changed,
    )


def case_out(case: Case, labels: list[str]) -> CaseOut:
    predictions = [
        PredictionOut(
            model_version=p.model_version,
            escalation_probability=p.escalation_probability,
            threshold=p.threshold,
            flagged=p.flagged,
            category=p.category,
            category_probability=p.category_probability,
            top=[LabelOut(**t) for t in p.top_categories] if p.top_categories else None,
            chunks=p.chunks,
            scored_at=p.created_at,
        )
        for p in case.predictions
    ]
    outcomes = [outcome_out(o, labels) for o in case.outcomes]
    return CaseOut(
        **summary_out(case).model_dump(),
        text=case.text,
        metadata=case.complaint_metadata,
        redactions=case.redactions,
        predictions=predictions,
        outcome=outcomes[-1] if outcomes else None,
        outcomes=outcomes,
    )


def model_labels(request: Request) -> list[str]:
    scorer: Scorer | None = request.app.state.scorer
    return list(scorer.bundle.manifest.categories) if scorer else []


def outcome_draft(outcome: OutcomeIn, redactor: Redactor | None) -> OutcomeDraft:
    """The outcome as stored: free text redacted like complaint text when redaction is on."""
    values = outcome.model_dump()
    if redactor is not None:
        for name in ("root_cause", "resolution", "lesson"):
            values[name] = redactor.redact(values[name]).text
    return OutcomeDraft(**values)


def explanation_for(
    session: Session, case: Case, scorer: Scorer, seconds: float
) -> dict:
    """Why `case` was flagged, from the cache or worked out now on the serving model."""
    cached = cached_explanation(session, case, scorer.version)
    if cached is not None:
        return cached

    result = explain(
        scorer, Complaint(case.text, case.complaint_metadata), time_budget_s=seconds
    )
    payload = result.to_dict()
    try:
        with session.begin_nested():
            store_explanation(session, case, scorer.version, payload)
    except IntegrityError:
        logger.debug("case %s was explained concurrently; keeping that one", case.id)
    logger.info(
        "explained case %s: %d of %d phrases in %.2f s",
        case.id,
        result.evaluated,
        result.units,
        result.seconds,
    )
    return payload


@router.get("/v1/cases", response_model=CasePageOut, tags=["cases"])
def cases(
    database: DatabaseDep,
    _: Manager,
    flagged: bool | None = None,
    status: Literal["open", "resolved"] | None = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    model_version: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = Query(
        default=None,
        description="Created at or after: a date (2026-12-01) or a date and time; UTC "
        "unless the value carries an offset.",
    ),
    until: datetime | None = Query(
        default=None, description="Created before; the same forms as `since`."
    ),
    order: Literal["recent", "escalation"] = "recent",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> CasePageOut:
    """Page through stored cases, newest first or most likely to escalate first."""
    query = CaseFilter(
        flagged=flagged,
        status=status,
        category=category,
        model_version=model_version,
        since=_utc(since),
        until=_utc(until),
        order=order,
        limit=limit,
        offset=offset,
    )
    with database.session() as session:
        rows, total = list_cases(session, query)
        items = [summary_out(case) for case in rows]
    return CasePageOut(items=items, total=total, limit=limit, offset=offset)


@router.get("/v1/cases/{case_id}", response_model=CaseOut, tags=["cases"])
def case(
    case_id: CaseId, request: Request, database: DatabaseDep, _: Manager
) -> CaseOut:
    """A case with every prediction and every outcome revision."""
    with database.session() as session:
        found = get_case(session, case_id)
        if found is None:
            raise case_not_found(case_id)
        return case_out(found, model_labels(request))


@router.post(
    "/v1/cases/{case_id}/outcome",
    response_model=OutcomeOut,
    status_code=201,
    tags=["cases"],
)
def outcome(
    case_id: CaseId,
    body: OutcomeIn,
    request: Request,
    database: DatabaseDep,
    principal: Manager,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Send the same key again to retry safely: the outcome is "
            "recorded once and the retry gets the first answer.",
        ),
    ] = None,
) -> OutcomeOut:
    """Record what really happened; a later call is a correction kept in the history."""
    key = checked(idempotency_key, principal)
    route = f"outcome:{case_id}"
    digest = body_digest(body.model_dump())
    draft = outcome_draft(body, request.app.state.redactor)
    # Two writers can race for the same revision number (or the same idempotency key);
    # the loser's second attempt sees the winner's row.
    for attempt in (1, 2):
        try:
            with database.session() as session, session.begin():
                if key is not None:
                    earlier = replay(session, principal, key, route, digest)
                    if earlier is not None:
                        return JSONResponse(earlier.response, earlier.status_code)
                found = get_case(session, case_id)
                if found is None:
                    raise case_not_found(case_id)
                stored = record_outcome(session, found, draft, principal)
                answer = outcome_out(stored, model_labels(request))
                if key is not None:
                    response = answer.model_dump(mode="json")
                    remember(session, principal, key, route, digest, 201, response)
            return answer
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@router.get(
    "/v1/cases/{case_id}/explanation", response_model=ExplanationOut, tags=["cases"]
)
def explanation(
    case_id: CaseId, request: Request, database: DatabaseDep, _: Manager
) -> ExplanationOut:
    """The phrases that moved the escalation probability most (computed once, then cached)."""
    scorer = request.app.state.scorer
    if scorer is None:
        raise HTTPException(503, "the model is not loaded yet; retry shortly")
    seconds = request.app.state.settings.explain_seconds
    with database.session() as session, session.begin():
        found = get_case(session, case_id)
        if found is None:
            raise case_not_found(case_id)
        payload = explanation_for(session, found, scorer, seconds)
    return ExplanationOut(case_id=case_id, **_public(payload))


def _public(payload: dict) -> dict:
    keys = ("model_version", "target", "probability", "raised", "lowered")
    keys += ("complete", "units", "evaluated")
    return {key: payload[key] for key in keys}


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        rate_limit_per_minute=row.rate_limit_per_minute,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.get("/v1/keys", response_model=list[KeyOut], tags=["keys"])
def keys(database: DatabaseDep, _: Admin) -> list[KeyOut]:
    """Every key, revoked ones included; never the keys themselves."""
    with database.session() as session:
        return [
            key_out(row) for row in session.scalars(select(ApiKey).order_by(ApiKey.id))
        ]


@router.post("/v1/keys", response_model=NewKeyOut, status_code=201, tags=["keys"])
def new_key(body: KeyIn, database: DatabaseDep, _: Admin) -> NewKeyOut:
    """Create a key; the response is the only place the key is ever shown."""
    with database.session() as session, session.begin():
        try:
            row, key = create_key(
                session, body.name, body.role, body.rate_limit_per_minute
            )
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        return NewKeyOut(**key_out(row).model_dump(), key=key)


@router.delete("/v1/keys/{key_id}", response_model=KeyOut, tags=["keys"])
def delete_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    database: DatabaseDep,
    _: Admin,
) -> KeyOut:
    """Revoke a key; it stops working within TRIAGE_KEY_CACHE_SECONDS."""
    with database.session() as session, session.begin():
        row = revoke_key(session, key_id)
        if row is None:
            raise HTTPException(404, f"no key with id {key_id}")
        request.app.state.keyring.forget()
        return key_out(row)
