"""Tables of the cases database.

These are storage models, kept apart from the HTTP schemas in `serving.schemas`. Every change
to them needs an Alembic migration under `serving/db/migrations/versions/`; a test compares
the migrated schema with these models on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

CASE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
ROLES = ("caller", "manager", "admin")
OPEN, RESOLVED = "open", "resolved"

# Constraint names are fixed so migrations name them the same on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return (
            value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiKey(Base):
    """A key a caller presents as `Authorization: Bearer <key>`; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Requests per minute; None takes TRIAGE_RATE_LIMIT_PER_MINUTE, 0 means unlimited.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Case(Base):
    """A stored complaint with its predictions over time and its outcome.

    The latest prediction is copied onto the case (`escalation_probability`, `flagged`,
    `category`, `model_version`) so the review queue filters and sorts on one table.
    """

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    complaint_metadata: Mapped[dict | None] = mapped_column(
        "metadata", JSON, nullable=True
    )
    redactions: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    model_version: Mapped[str] = mapped_column(String(200))
    escalation_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id"), nullable=True
    )

    predictions: Mapped[list[CasePrediction]] = relationship(
        back_populates="case",
        order_by="CasePrediction.id",
        cascade="all, delete-orphan",
    )
    outcomes: Mapped[list[Outcome]] = relationship(
        back_populates="case", order_by="Outcome.revision", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_cases_queue", "status", "flagged", "escalation_probability"),
        Index("ix_cases_created_at", "created_at"),
        Index("ix_cases_resolved_at", "resolved_at"),
    )


class CasePrediction(Base):
    """What one model version said about a case's text at one time."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    model_version: Mapped[str] = mapped_column(String(200))
    escalation_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    category_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    top_categories: Mapped[list | None] = mapped_column(JSON, nullable=True)
    chunks: Mapped[int] = mapped_column(Integer)
    text_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="predictions")


class Outcome(Base):
    """One revision of what really happened, as a manager recorded it.

    A correction adds a revision; `changed` lists the fields it changed, so the history says
    who changed what and when. The highest revision is the case's current outcome.
    """

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    escalated: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str] = mapped_column(String(200))
    root_cause: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    lesson: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(200))
    reviewer_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id"), nullable=True
    )
    changed: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="outcomes")

    __table_args__ = (UniqueConstraint("case_id", "revision"),)


class CachedExplanation(Base):
    """Why a case was flagged, computed once per text and model version."""

    __tablename__ = "explanations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(200))
    text_sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("case_id", "model_version", "text_sha256"),)


CHAMPION, CHALLENGER, RETIRED = "champion", "challenger", "retired"


class ModelVersion(Base):
    """A bundle in the registry: where it lives, how good it was, who made and promoted it.

    Exactly one version is `champion` (the one serving answers); a new bundle starts as
    `challenger`; a champion that is replaced becomes `retired`.
    """

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=CHALLENGER)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    training_data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    trained_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_model_versions_status", "status"),)


class ChampionTerm(Base):
    """One stretch of time during which a version was the champion, and why it started."""

    __tablename__ = "champion_terms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(32))


class ShadowPrediction(Base):
    """What the challenger said about a request the champion answered (never returned)."""

    __tablename__ = "shadow_predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True
    )
    text_sha256: Mapped[str] = mapped_column(String(64))
    champion_version: Mapped[str] = mapped_column(String(200))
    champion_escalation: Mapped[float | None] = mapped_column(Float, nullable=True)
    champion_category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    challenger_version: Mapped[str] = mapped_column(String(200), index=True)
    challenger_escalation: Mapped[float | None] = mapped_column(Float, nullable=True)
    challenger_category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    """The answer to a write that carried an `Idempotency-Key`, stored in the write's own
    transaction: a retry gets the same answer and the write happens once."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("key_id", "idempotency_key"),)


class CaseEmbedding(Base):
    """A case's pooled text embedding from one model version's ONNX graph.

    Kept so that the similar-cases index of a model version is rebuilt after a restart without
    embedding every case again; `text_sha256` says which text it was computed from, so a case
    scored again with new text is embedded again. `vector` holds float32 values, little-endian.
    """

    __tablename__ = "case_embeddings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(200), index=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    dimensions: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("case_id", "model_version"),)
