"""The service's settings: one class, read from `TRIAGE_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from triage.redaction import KINDS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
DEFAULT_DATA_DIR = REPO_ROOT / "var"


class Settings(BaseSettings):
    """Serving configuration; every field can be set as `TRIAGE_<FIELD>` (e.g. `TRIAGE_MODEL_DIR`)."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_ignore_empty=True, extra="ignore"
    )

    model_dir: Path = Field(
        default=DEFAULT_MODEL_DIR, description="The bundle to serve."
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="onnxruntime intra-op threads per model run; default the CPUs available "
        "divided by max_concurrent_runs (one each by default).",
    )
    max_concurrent_runs: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Model runs at the same time; default the CPUs available to the "
        "process (cgroup quota and affinity).",
    )
    micro_batching: bool = Field(
        default=True,
        description="Merge concurrent scoring requests into shared model runs.",
    )
    batch_tokens: int = Field(
        default=1024,
        ge=16,
        le=65_536,
        description="Most tokens of text merged into one batch of requests.",
    )
    batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="How long a free runner waits for more requests before scoring what "
        "it has; 0 scores at once (batches still form under load).",
    )
    escalation_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Flag at this probability instead of the bundle's default.",
    )
    max_text_chars: int = Field(
        default=50_000, ge=1, description="Longest complaint text accepted."
    )
    max_batch_items: int = Field(
        default=64, ge=1, description="Most complaints in one batch request."
    )
    max_batch_chars: int = Field(
        default=500_000,
        ge=1,
        description="Most characters in one batch request, all items together: bounds its cost.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body read; a larger one gets 413 before it is read.",
    )
    max_metadata_keys: int = Field(default=32, ge=0)
    max_metadata_key_chars: int = Field(default=64, ge=1)
    max_metadata_value_chars: int = Field(default=500, ge=1)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Where the default SQLite database and the local key file live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the cases database, e.g. "
        "postgresql+psycopg://user@host:5432/triage; default a SQLite file in data_dir.",
    )
    auto_migrate: bool = Field(
        default=True, description="Apply database migrations when the service starts."
    )
    scoring_requires_key: bool = Field(
        default=True,
        description="Scoring needs a caller key; false opens the scoring routes to anyone "
        "who can reach the port.",
    )
    key_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a checked key is remembered; a revoked key stops working "
        "within this time.",
    )
    redact: bool = Field(
        default=True,
        description="Redact personal data (emails, phones, card, social security and "
        "account numbers) from complaints and outcomes before storing them.",
    )
    redact_kinds: list[str] = Field(
        default=list(KINDS),
        description="Which kinds to redact, as a JSON list.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the review page's session cookie; unset, a random secret is "
        "made at start and sign-ins end when the process restarts.",
    )
    secure_cookies: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only (set behind TLS).",
    )
    explain_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Time budget for working out why a case was flagged.",
    )
    similar_cases: int = Field(
        default=5,
        ge=0,
        le=20,
        description="How many similar resolved cases the review page shows with a case; "
        "0 hides the panel.",
    )
    similar_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Time budget, per request, for embedding resolved cases the "
        "similar-cases index lacks (after a new model version); later requests carry on.",
    )

    registry_dir: Path | None = Field(
        default=None,
        description="Where registered bundles are kept; default data_dir/models.",
    )
    registry_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the service checks the registry for a new champion.",
    )
    shadow: bool = Field(
        default=False,
        description="Also score every request with the newest challenger and store its "
        "answers (never returned), for `triage models compare`.",
    )

    rate_limit_per_minute: int = Field(
        default=1200,
        ge=0,
        description="Requests per minute per API key unless the key sets its own; 0 turns "
        "the default limit off.",
    )

    @field_validator("redact_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; choose from {list(KINDS)}")
        return kinds

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'triage.sqlite3'}"

    @property
    def resolved_registry_dir(self) -> Path:
        return self.registry_dir or self.data_dir / "models"

    @property
    def local_key_path(self) -> Path:
        return self.data_dir / "local-admin.key"


@lru_cache
def get_settings() -> Settings:
    return Settings()
