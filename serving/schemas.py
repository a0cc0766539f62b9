"""Request and response bodies of the HTTP API (the OpenAPI contract)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from triage.scorer import Prediction

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
