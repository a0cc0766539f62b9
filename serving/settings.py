"""The service's settings: one class, read from `TRIAGE_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"


class Settings(BaseSettings):
    """Serving configuration; every field can be set as `TRIAGE_<FIELD>` (e.g. `TRIAGE_MODEL_DIR`)."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_ignore_empty=True, extra="ignore"
    )

    model_dir: Path = Field(
        default=DEFAULT_MODEL_DIR, description="The bundle to serve."
    )
    threads: int | None = Field(
        default=None, ge=1, le=256, description="onnxruntime intra-op threads."
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
    max_metadata_keys: int = Field(default=32, ge=0)
    max_metadata_key_chars: int = Field(default=64, ge=1)
    max_metadata_value_chars: int = Field(default=500, ge=1)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")


@lru_cache
def get_settings() -> Settings:
    return Settings()
