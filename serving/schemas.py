"""Request and response bodies of the HTTP API (the OpenAPI contract)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from triage.scorer import Prediction
from triage.text import unicode_problem

CASE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CASE_ID_RULE = "1-128 characters of letters, digits, '-', '_', '.' and ':'"

# Scalars only; NaN and infinities are not values a caller means to send.
FiniteFloat = Annotated[StrictFloat, AllowInfNan(False)]
MetadataValue = StrictStr | StrictInt | FiniteFloat | StrictBool | None


class ComplaintIn(BaseModel):
    """A complaint to score."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(
        description="The complaint: ticket, email or call transcript."
    )
    metadata: dict[str, MetadataValue] | None = Field(
        default=None,
        description="Optional context such as company or state. Keys the model does not read are "
        "accepted, ignored and listed in the response's `ignored_metadata`.",
    )
    case_id: StrictStr | None = Field(
        default=None,
        description=f"Store the complaint as this case ({CASE_ID_RULE}); scoring the same id "
        "again adds a prediction to the case's history.",
        examples=["call-2026-12-03-0042"],
    )
    record: StrictBool = Field(
        default=False,
        description="Store the complaint as a new case with an id the service makes.",
    )

    @field_validator("case_id")
    @classmethod
    def _case_id(cls, value: str | None) -> str | None:
        if value is not None and (not CASE_ID.fullmatch(value) or not value.strip(".")):
            raise ValueError(f"case_id must be {CASE_ID_RULE}, not only dots")
        return value

    @property
    def wants_record(self) -> bool:
        return self.record or self.case_id is not None


class BatchIn(BaseModel):
    """Several complaints scored in one call; results come back in the same order."""

    model_config = ConfigDict(extra="forbid")

    items: list[ComplaintIn] = Field(min_length=1)


class EscalationOut(BaseModel):
    probability: float = Field(
        description="Calibrated probability that the complaint escalates."
    )
    flagged: bool = Field(description="Whether the probability reaches the threshold.")
    threshold: float


class LabelOut(BaseModel):
    label: str
    probability: float


class CategoryOut(BaseModel):
    label: str = Field(description="The most likely failure category.")
    probability: float
    top: list[LabelOut]


class TriageOut(BaseModel):
    """One model version's prediction for one complaint."""

    escalation: EscalationOut | None = Field(
        description="Null when the model has no escalation head (a category-only bundle)."
    )
    category: CategoryOut | None
    model_version: str
    chunks: int = Field(
        description="How many overlapping windows the text was scored in."
    )
    ignored_metadata: list[str] = Field(default_factory=list)
    case_id: str | None = Field(
        default=None, description="The stored case, when the request asked to record."
    )
    recorded: bool = Field(
        default=False, description="Whether the prediction was stored as a case."
    )
    record_error: str | None = Field(
        default=None,
        description="Why a requested recording failed; the prediction is still valid.",
    )

    @classmethod
    def from_prediction(cls, prediction: Prediction) -> TriageOut:
        escalation = category = None
        if prediction.escalation is not None:
            escalation = EscalationOut(**prediction.escalation.__dict__)
        if prediction.category is not None:
            top = [
                LabelOut(label=s.label, probability=s.probability)
                for s in prediction.category.top
            ]
            category = CategoryOut(
                label=prediction.category.label,
                probability=prediction.category.probability,
                top=top,
            )
        return cls(
            escalation=escalation,
            category=category,
            model_version=prediction.model_version,
            chunks=prediction.chunks,
            ignored_metadata=prediction.ignored_metadata,
        )


class BatchOut(BaseModel):
    results: list[TriageOut]


class ReadyOut(BaseModel):
    status: str
    model_version: str | None = None
    details: dict[str, object] = Field(default_factory=dict)


def _free_text(value: str, name: str) -> str:
    """A manager's free text: valid Unicode without control characters other than line
    breaks and tabs (these fields are printed in terminals and documents, where an escape
    sequence would act)."""
    problem = unicode_problem(value)
    if problem:
        raise ValueError(f"{name} {problem}")
    for index, char in enumerate(value):
        if unicodedata.category(char) == "Cc" and char not in "\n\r\t":
            raise ValueError(
                f"{name} contains a control character (U+{ord(char):04X}) at character "
                f"{index}; remove it"
            )
    return value.strip()


class OutcomeIn(BaseModel):
    """What really happened to a case, as the reviewing manager records it."""

    model_config = ConfigDict(extra="forbid")

    escalated: StrictBool = Field(
        description="Whether the case really needed a manager."
    )
    category: StrictStr = Field(
        min_length=1,
        max_length=200,
        description="The true failure category: one of the model's labels, or a new one.",
    )
    root_cause: StrictStr = Field(default="", max_length=10_000)
    resolution: StrictStr = Field(default="", max_length=10_000)
    lesson: StrictStr = Field(
        default="",
        max_length=10_000,
        description="What the team should learn from this case.",
    )

    @field_validator("category", "root_cause", "resolution", "lesson")
    @classmethod
    def _text(cls, value: str, info) -> str:
        return _free_text(value, info.field_name)

    @model_validator(mode="after")
    def _category_not_blank(self) -> OutcomeIn:
        if not self.category:
            raise ValueError("category must not be blank")
        return self


class OutcomeOut(BaseModel):
    revision: int = Field(description="1 for the first outcome; corrections count up.")
    escalated: bool
    category: str
    new_category: bool = Field(
        description="The category is not one of the model's labels."
    )
    root_cause: str
    resolution: str
    lesson: str
    reviewer: str
    recorded_at: datetime
    changed: list[str] | None = Field(
        description="Fields this revision changed from the one before; null for the first."
    )


class PredictionOut(BaseModel):
    model_version: str
    escalation_probability: float | None
    threshold: float | None
    flagged: bool
    category: str | None
    category_probability: float | None
    top: list[LabelOut] | None
    chunks: int
    scored_at: datetime


class CaseSummaryOut(BaseModel):
    case_id: str
    status: Literal["open", "resolved"]
    flagged: bool
    escalation_probability: float | None
    category: str | None = Field(description="The latest predicted category.")
    model_version: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class CaseOut(CaseSummaryOut):
    text: str = Field(description="The stored text (redacted when redaction is on).")
    metadata: dict[str, object] | None
    redactions: dict[str, int] | None = Field(
        description="How many items of each kind were redacted before storage."
    )
    predictions: list[PredictionOut] = Field(description="Oldest first.")
    outcome: OutcomeOut | None = Field(description="The current outcome, if any.")
    outcomes: list[OutcomeOut] = Field(description="Every revision, oldest first.")


class CasePageOut(BaseModel):
    items: list[CaseSummaryOut]
    total: int
    limit: int
    offset: int


class PhraseOut(BaseModel):
    start: int = Field(description="Character offset into the case's stored text.")
    end: int
    text: str
    delta: float = Field(
        description="How much the probability drops when this phrase is removed."
    )


class ExplanationOut(BaseModel):
    case_id: str
    model_version: str
    target: str = Field(
        description="What is explained: `escalation`, or `category:<label>` for a "
        "category-only model."
    )
    probability: float = Field(
        description="The target's probability on the stored text."
    )
    raised: list[PhraseOut] = Field(
        description="Phrases that raised it, strongest first."
    )
    lowered: list[PhraseOut]
    complete: bool = Field(
        description="False when the time budget ran out before every phrase was tried."
    )
    units: int
    evaluated: int


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, max_length=200)
    role: Literal["caller", "manager", "admin"]
    rate_limit_per_minute: StrictInt | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="This key's limit; 0 means unlimited, null the service default.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = _free_text(value, "name")
        if not value or not value.isprintable():
            raise ValueError(
                "name must be printable text, such as a person or a system"
            )
        return value


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    rate_limit_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(
        description="The key itself: shown this once, stored only as a hash."
    )


class SimilarCaseOut(BaseModel):
    case_id: str
    similarity: float = Field(
        description="Cosine similarity of the two texts' embeddings, from -1 to 1."
    )
    category: str = Field(description="The true category, from the current outcome.")
    predicted_category: str | None = Field(description="The latest predicted category.")
    escalated: bool
    root_cause: str
    resolution: str
    lesson: str
    resolved_at: datetime | None


class SimilarCasesOut(BaseModel):
    case_id: str
    model_version: str = Field(
        description="The model whose text embeddings were compared."
    )
    searched: int = Field(description="How many resolved cases were searched.")
    pending: int = Field(
        description="Resolved cases not embedded yet for this model version when the "
        "request's time budget (TRIAGE_SIMILAR_SECONDS) ran out; ask again to search "
        "them too."
    )
    items: list[SimilarCaseOut] = Field(description="Most similar first.")
