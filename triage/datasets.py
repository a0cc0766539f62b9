"""Declarative dataset specs: which column holds what, and how labels are derived.

A spec is a TOML file (see `data/specs/`). It names one or more sources (CSV, JSONL or Parquet
files) and for each says where the complaint text, the failure category, the escalation outcome,
the time and the metadata are. Reading the files is the job of `training.data`; this module only
describes and validates, so it stays free of heavy dependencies.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from triage.errors import DatasetSpecError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EscalationRule(_Strict):
    """How the escalation label is derived from one column of a source.

    Values in `positive` give 1, values in `negative` give 0, values in `unlabelled` give no
    escalation label (the row still trains the category head). Any other value is an error, so a
    new value in a data refresh cannot slip into either class unnoticed.
    """

    column: str
    positive: list[str]
    negative: list[str]
    unlabelled: list[str] = Field(default_factory=list)
    proxy: str = Field(
        description="What the label really measures, shown wherever it is reported."
    )

    @model_validator(mode="after")
    def _disjoint(self) -> EscalationRule:
        groups = [set(self.positive), set(self.negative), set(self.unlabelled)]
        if (groups[0] & groups[1]) or (groups[0] | groups[1]) & groups[2]:
            raise ValueError(
                "positive, negative and unlabelled values must not overlap"
            )
        return self


class Source(_Strict):
    """One data file and the meaning of its columns."""

    path: str
    format: Literal["csv", "jsonl", "parquet"]
    text_column: str
    id_column: str | None = None
    category_column: str | None = None
    category_map: dict[str, str | None] | None = Field(
        default=None,
        description="Raw value -> label; a value mapped to an empty string is dropped.",
    )
    escalation: EscalationRule | None = None
    time_column: str | None = None
    metadata_columns: list[str] = Field(default_factory=list)
    split: Literal["temporal", "train"] = Field(
        default="temporal",
        description="'train' puts every row in the training split (an older era with no dates).",
    )

    @model_validator(mode="after")
    def _temporal_needs_time(self) -> Source:
        if self.split == "temporal" and not self.time_column:
            raise ValueError(
                f"{self.path}: a temporal split needs time_column (or split = 'train')"
            )
        return self


class SplitRule(_Strict):
    """Fractions of the time-ordered rows; later rows go to validation, the latest to test."""

    train: float = 0.70
    validation: float = 0.15
    test: float = 0.15

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitRule:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-6:
            raise ValueError("split fractions must add up to 1")
        return self


class DatasetSpec(_Strict):
    """A named dataset: its sources, the category labels and the split."""

    name: str
    description: str = ""
    attribution: str = ""
    sources: list[Source]
    categories: list[str] | None = Field(
        default=None,
        description="Label order of the category head; default: sorted labels seen.",
    )
    metadata_keys: list[str] = Field(
        default_factory=list,
        description="Metadata keys a model trained on this set reads.",
    )
    split: SplitRule = Field(default_factory=SplitRule)
    root: Path = Field(default=Path("."), exclude=True)

    @property
    def has_escalation(self) -> bool:
        return any(s.escalation is not None for s in self.sources)

    @property
    def has_category(self) -> bool:
        return any(s.category_column is not None for s in self.sources)

    @property
    def escalation_proxy(self) -> str | None:
        rules = [s.escalation for s in self.sources if s.escalation is not None]
        return rules[0].proxy if rules else None

    def resolve(self, source: Source) -> Path:
        return (self.root / source.path).resolve()


def load_spec(path: Path) -> DatasetSpec:
    """Read and validate a spec file (TOML, or JSON for specs written by `triage retrain`);
    relative source paths are relative to the spec's folder."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise DatasetSpecError(f"dataset spec {path} does not exist") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise DatasetSpecError(
            f"dataset spec {path} is not valid {kind}: {error}"
        ) from None

    try:
        return DatasetSpec(**raw, root=path.parent)
    except ValidationError as error:
        raise DatasetSpecError(f"dataset spec {path} is invalid:\n{error}") from None
