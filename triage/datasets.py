"""Declarative dataset specs: which column holds what, and how labels are derived.

A spec is a TOML file (see `data/specs/`). It names one or more sources (CSV, JSONL or Parquet
files) and for each says where the complaint text, the failure category, the escalation outcome,
the time and the metadata are, and which split its rows belong to. Reading the files is the job
of `triage.data`; this module only describes and validates, so it stays free of heavy
dependencies.

A spec is either written by hand (`data/specs/*.toml`) or made from command-line flags for one
file (`spec_for_file`): both go through the same models and the same loader.
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
    split: Literal["temporal", "random", "column", "train", "validation", "test"] = (
        Field(
            default="temporal",
            description=(
                "'temporal' cuts rows ordered by time_column; 'random' assigns each row by a hash "
                "of its id; 'column' reads each row's split from split_column (an official split); "
                "'train', 'validation' or 'test' put every row of the file in that split."
            ),
        )
    )
    split_column: str | None = None
    split_values: dict[str, str] | None = Field(
        default=None,
        description="Raw value of split_column -> train, validation or test ('' drops the row).",
    )

    @model_validator(mode="after")
    def _split_needs_its_columns(self) -> Source:
        if self.split == "temporal" and not self.time_column:
            raise ValueError(
                f"{self.path}: a temporal split needs time_column (or split = 'random', "
                "'column', 'train', 'validation' or 'test')"
            )
        if self.split == "column" and not (self.split_column and self.split_values):
            raise ValueError(
                f"{self.path}: split = 'column' needs split_column and split_values"
            )
        wrong = sorted(
            set((self.split_values or {}).values())
            - {"train", "validation", "test", ""}
        )
        if wrong:
            raise ValueError(
                f"{self.path}: split_values map to train, validation, test or '', "
                f"not {', '.join(wrong)}"
            )
        return self

    def columns(self) -> dict[str, str]:
        """Every column this source reads, by the spec field (and CLI flag) that names it."""
        named = {
            "text_column": self.text_column,
            "id_column": self.id_column,
            "category_column": self.category_column,
            "time_column": self.time_column,
            "escalation.column": self.escalation.column if self.escalation else None,
            "split_column": self.split_column,
        }
        named.update(
            {f"metadata_columns[{i}]": c for i, c in enumerate(self.metadata_columns)}
        )
        return {field: column for field, column in named.items() if column}


class SplitRule(_Strict):
    """How rows become train, validation and test.

    The fractions cut the time-ordered rows of temporal sources (later rows go to validation,
    the latest to test) and assign the rows of random ones. `validation_from_train` takes that
    share of the training rows as validation, for sets whose official split has no validation
    part (banking77). `drop_seen_texts` drops validation and test rows whose text is already in
    an earlier split; turn it off to keep an official test split whole.
    """

    train: float = 0.70
    validation: float = 0.15
    test: float = 0.15
    validation_from_train: float = Field(default=0.0, ge=0.0, lt=1.0)
    drop_seen_texts: bool = True

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


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
# Names of the split column's values that mean each split, for files that carry their own.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
ESCALATED = ["1", "true", "True", "TRUE", "yes", "Yes", "YES"]
NOT_ESCALATED = ["0", "false", "False", "FALSE", "no", "No", "NO"]


def file_format(path: Path) -> Literal["csv", "jsonl", "parquet"]:
    """The format of a data file from its name (a `.gz` ending is looked through)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    found = FORMATS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise DatasetSpecError(
            f"{path.name}: cannot tell the format from the name; expected .csv, .jsonl or "
            ".parquet (optionally .gz), or pass --format csv, jsonl or parquet"
        )
    return found  # type: ignore[return-value]


def spec_for_file(
    path: Path,
    text_column: str,
    category_column: str | None = None,
    escalation_column: str | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    metadata_columns: list[str] | None = None,
    split_column: str | None = None,
    format: Literal["csv", "jsonl", "parquet"] | None = None,
) -> DatasetSpec:
    """A one-source spec for any CSV, JSONL or Parquet file, from its column names.

    What `triage train --data FILE --text-column ...` builds, so a file brought on the command
    line goes through the same checks and loader as a spec written by hand. The split follows
    the file: its own split column if named (values train, validation or dev, test), else a
    temporal split on the time column, else a random split by a hash of each row's id.
    Escalation values 1/true/yes are escalated, 0/false/no are not, empty cells are unlabelled.
    """
    path = Path(path).resolve()
    if split_column:
        split = "column"
    else:
        split = "temporal" if time_column else "random"
    escalation = None
    if escalation_column:
        escalation = EscalationRule(
            column=escalation_column,
            positive=ESCALATED,
            negative=NOT_ESCALATED,
            unlabelled=[""],
            proxy=f"the {escalation_column} column of {path.name}",
        )
    metadata_columns = list(metadata_columns or [])
    try:
        source = Source(
            path=str(path),
            format=format or file_format(path),
            text_column=text_column,
            id_column=id_column,
            category_column=category_column,
            escalation=escalation,
            time_column=time_column,
            metadata_columns=metadata_columns,
            split=split,
            split_column=split_column,
            split_values=SPLIT_NAMES if split_column else None,
        )
        return DatasetSpec(
            name=path.name.split(".")[0],
            description=f"{path.name}, columns mapped on the command line",
            sources=[source],
            metadata_keys=metadata_columns,
        )
    except ValidationError as error:
        raise DatasetSpecError(f"{path.name}: {error}") from None
