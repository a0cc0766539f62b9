"""Cases and outcomes: the writes and reads behind the cases API and the review page.

Each function works inside a session its caller owns, so one request is one transaction: a
batch of scored complaints is stored whole or not at all, and so is an outcome.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from serving.auth import Principal
from serving.db.models import (
    OPEN,
    RESOLVED,
    CachedExplanation,
    Case,
    CasePrediction,
    Outcome,
    ShadowPrediction,
    utcnow,
)
from triage.redaction import Redactor
from triage.retraining import ResolvedCase
from triage.scorer import Prediction

logger = logging.getLogger(__name__)

OUTCOME_FIELDS = ("escalated", "category", "root_cause", "resolution", "lesson")


@dataclass(frozen=True)
class CaseRecord:
    """One scored complaint to store: the caller's case id (or None to make one)."""

    case_id: str | None
    text: str
    metadata: Mapping[str, object] | None
    prediction: Prediction


@dataclass(frozen=True)
class OutcomeDraft:
    """What a manager says really happened."""

    escalated: bool
    category: str
    root_cause: str = ""
    resolution: str = ""
    lesson: str = ""


@dataclass(frozen=True)
class CaseFilter:
    """Which cases to list, and in what order (`escalation`: most likely first)."""

    flagged: bool | None = None
    status: str | None = None
    category: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: str = "recent"
    limit: int = 50
    offset: int = 0


def new_case_id() -> str:
    return f"case-{secrets.token_hex(8)}"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_cases(
    session: Session,
    records: Sequence[CaseRecord],
    redactor: Redactor | None,
    principal: Principal | None,
) -> list[str]:
    """Store each scored complaint as a new case or as a new prediction of an existing one."""
    case_ids = []
    now = utcnow()
    for record in records:
        case_id = record.case_id or new_case_id()
        text, metadata, counts = _redacted(record, redactor)
        case = session.get(Case, case_id)
        if case is None:
            case = Case(
                id=case_id,
                status=OPEN,
                created_at=now,
                created_by=principal.key_id if principal else None,
            )
            session.add(case)
        case.text, case.complaint_metadata, case.redactions = text, metadata, counts
        _add_prediction(case, record.prediction, text_digest(text), now)
        case_ids.append(case_id)
    session.flush()
    logger.debug("stored %d cases", len(case_ids))
    return case_ids


def _redacted(
    record: CaseRecord, redactor: Redactor | None
) -> tuple[str, dict | None, dict | None]:
    metadata = dict(record.metadata) if record.metadata is not None else None
    if redactor is None:
        return record.text, metadata, None

    redaction = redactor.redact(record.text)
    counts = dict(redaction.counts)
    for key, value in (metadata or {}).items():
        if isinstance(value, str):
            found = redactor.redact(value)
            metadata[key] = found.text
            for kind, n in found.counts.items():
                counts[kind] = counts.get(kind, 0) + n
    return redaction.text, metadata, counts


def _add_prediction(
    case: Case, prediction: Prediction, digest: str, now: datetime
) -> None:
    escalation, category = prediction.escalation, prediction.category
    row = CasePrediction(
        model_version=prediction.model_version,
        escalation_probability=escalation.probability if escalation else None,
        threshold=escalation.threshold if escalation else None,
        flagged=escalation.flagged if escalation else False,
        category=category.label if category else None,
        category_probability=category.probability if category else None,
        top_categories=[
            {"label": s.label, "probability": s.probability} for s in category.top
        ]
        if category
        else None,
        chunks=prediction.chunks,
        text_sha256=digest,
        created_at=now,
    )
    case.predictions.append(row)
    case.model_version = row.model_version
    case.escalation_probability = row.escalation_probability
    case.flagged = row.flagged
    case.category = row.category
    case.updated_at = row.created_at


def record_outcome(
    session: Session, case: Case, draft: OutcomeDraft, principal: Principal
) -> Outcome:
    """Add an outcome revision to `case`; the first one resolves it."""
    previous = case.outcomes[-1] if case.outcomes else None
    changed = None
    if previous is not None:
        changed = [
            name
            for name in OUTCOME_FIELDS
            if getattr(previous, name) != getattr(draft, name)
        ]
    now = utcnow()
    outcome = Outcome(
        revision=previous.revision + 1 if previous else 1,
        reviewer=principal.name,
        reviewer_key_id=principal.key_id,
        changed=changed,
        created_at=now,
        **{f.name: getattr(draft, f.name) for f in fields(draft)},
    )
    case.outcomes.append(outcome)
    case.status = RESOLVED
    case.resolved_at = case.resolved_at or now
    case.updated_at = now
    session.flush()
    logger.info(
        "recorded outcome revision %d of case %s by key %d",
        outcome.revision,
        case.id,
        principal.key_id,
    )
    return outcome


def get_case(session: Session, case_id: str) -> Case | None:
    return session.scalar(
        select(Case)
        .where(Case.id == case_id)
        .options(selectinload(Case.predictions), selectinload(Case.outcomes))
    )


def list_cases(session: Session, query: CaseFilter) -> tuple[list[Case], int]:
    """One page of cases matching `query`, and how many match in all."""
    statement = _filtered(select(Case), query)
    total = session.scalar(_filtered(select(func.count(Case.id)), query)) or 0
    if query.order == "escalation":
        statement = statement.order_by(
            Case.escalation_probability.desc().nulls_last(), Case.created_at.desc()
        )
    else:
        statement = statement.order_by(Case.created_at.desc(), Case.id)
    page = session.scalars(statement.limit(query.limit).offset(query.offset)).all()
    return list(page), total


def _filtered(statement: Select, query: CaseFilter) -> Select:
    if query.flagged is not None:
        statement = statement.where(Case.flagged == query.flagged)
    if query.status is not None:
        statement = statement.where(Case.status == query.status)
    if query.category is not None:
        statement = statement.where(Case.category == query.category)
    if query.model_version is not None:
        statement = statement.where(Case.model_version == query.model_version)
    if query.since is not None:
        statement = statement.where(Case.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(Case.created_at < query.until)
    return statement


def facets(session: Session) -> dict[str, list[str]]:
    """The categories and model versions present, for the review page's filters."""
    categories = session.scalars(
        select(Case.category).where(Case.category.is_not(None)).distinct()
    ).all()
    versions = session.scalars(select(Case.model_version).distinct()).all()
    return {"categories": sorted(categories), "model_versions": sorted(versions)}


def cached_explanation(session: Session, case: Case, model_version: str) -> dict | None:
    row = session.scalar(
        select(CachedExplanation).where(
            CachedExplanation.case_id == case.id,
            CachedExplanation.model_version == model_version,
            CachedExplanation.text_sha256 == text_digest(case.text),
        )
    )
    return row.payload if row is not None else None


def store_explanation(
    session: Session, case: Case, model_version: str, payload: dict
) -> None:
    session.add(
        CachedExplanation(
            case_id=case.id,
            model_version=model_version,
            text_sha256=text_digest(case.text),
            payload=payload,
        )
    )
    session.flush()


def record_shadow(
    session: Session,
    items: Sequence,
    champion: Sequence[Prediction],
    challenger: Sequence[Prediction],
    results: Sequence,
) -> None:
    """Store the challenger's answers beside the champion's, linked to the case if stored."""
    for item, ours, theirs, result in zip(
        items, champion, challenger, results, strict=True
    ):
        session.add(
            ShadowPrediction(
                case_id=result.case_id if result.recorded else None,
                text_sha256=text_digest(item.text),
                champion_version=ours.model_version,
                champion_escalation=ours.escalation.probability
                if ours.escalation
                else None,
                champion_category=ours.category.label if ours.category else None,
                challenger_version=theirs.model_version,
                challenger_escalation=theirs.escalation.probability
                if theirs.escalation
                else None,
                challenger_category=theirs.category.label if theirs.category else None,
            )
        )


def resolved_cases(session: Session) -> list[ResolvedCase]:
    """Every resolved case with its current outcome: what a retrain learns from."""
    rows = session.scalars(
        select(Case).where(Case.status == RESOLVED).options(selectinload(Case.outcomes))
    ).all()
    return [
        ResolvedCase(
            case_id=case.id,
            text=case.text,
            metadata=case.complaint_metadata,
            escalated=case.outcomes[-1].escalated,
            category=case.outcomes[-1].category,
            created_at=case.created_at,
        )
        for case in rows
        if case.outcomes
    ]


def cases_since(session: Session, since: datetime) -> list[Case]:
    """Cases created at or after `since`, with their outcomes."""
    return list(
        session.scalars(
            select(Case)
            .where(Case.created_at >= since)
            .options(selectinload(Case.outcomes))
            .order_by(Case.created_at)
        )
    )
