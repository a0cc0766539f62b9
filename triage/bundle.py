"""The model bundle: a self-contained directory that the scorer serves.

A bundle holds `model.onnx` (both heads and the pooled embedding in one graph), `tokenizer.json`,
`manifest.json` (what the graph means: labels, temperatures, threshold, window, gate results and
metrics) and `MODEL_CARD.md`. Loading validates all of it up front, so a broken bundle fails at
startup with the file and the problem named, never on a request.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from triage.errors import BundleError

FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "MODEL_CARD.md"
LEXICAL_FILE = "lexical.npz"
# Bundles made before the .npz format carry this instead; they still load, a little slower.
LEGACY_LEXICAL_FILE = "lexical.json.gz"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE)


class Temperatures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    escalation: float | None = Field(default=None, gt=0)
    category: float | None = Field(default=None, gt=0)


class BlendWeights(BaseModel):
    """served logit = w * encoder_logit / encoder_temperature + (1 - w) * lexical_logit."""

    model_config = ConfigDict(extra="forbid")

    encoder_weight: float = Field(ge=0, le=1)
    encoder_temperature: float = Field(gt=0)


class Manifest(BaseModel):
    """What a bundle's graph means and how it was made and measured."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = FORMAT_VERSION
    version: str = Field(min_length=1, max_length=128)
    created_at: datetime
    base_model: str
    categories: list[str] = Field(
        description="Category head labels in logit order; [] if none."
    )
    escalation: bool = Field(description="Whether the graph has an escalation head.")
    escalation_proxy: str | None = Field(
        default=None,
        description="What the escalation label of the training data really measures.",
    )
    metadata_keys: list[str] = Field(default_factory=list)
    max_tokens: int = Field(ge=16, le=512)
    chunk_overlap: int = Field(ge=0)
    chunk_aggregation: str = "mean of chunk logits weighted by text tokens"
    temperatures: Temperatures = Field(default_factory=Temperatures)
    threshold: float | None = Field(default=None, ge=0, le=1)
    threshold_rule: str | None = None
    quantization: str = "int8-dynamic"
    blend: dict[str, BlendWeights] | None = Field(
        default=None,
        description="Per head, how the encoder's logits are mixed with the lexical model's "
        "(lexical.npz); None serves the encoder alone.",
    )
    dataset: dict = Field(default_factory=dict)
    training: dict = Field(default_factory=dict)
    gate: dict = Field(default_factory=dict)
    metrics: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _heads_consistent(self) -> Manifest:
        if not self.escalation and not self.categories:
            raise ValueError(
                "a bundle needs an escalation head, a category head, or both"
            )
        if self.escalation and self.threshold is None:
            raise ValueError("a bundle with an escalation head needs a threshold")
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is not supported (this triage reads {FORMAT_VERSION})"
            )
        return self


class Bundle:
    """A validated bundle directory."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def lexical_path(self) -> Path:
        legacy = self.path / LEGACY_LEXICAL_FILE
        current = self.path / LEXICAL_FILE
        return legacy if legacy.is_file() and not current.is_file() else current


def read_manifest(path: Path) -> Manifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path} is not valid JSON: {error}") from None

    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        raise BundleError(
            f"{path} does not describe a triage bundle:\n{error}"
        ) from None


def load_bundle(path: str | Path) -> Bundle:
    """Validate the bundle at `path` (files present, manifest well-formed) and return it."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            f"model bundle {path} is not a directory: pass the path of a bundle such as "
            "models/default (the server reads it from TRIAGE_MODEL_DIR)"
        )

    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise BundleError(f"model bundle {path} lacks {', '.join(missing)}")
    manifest = read_manifest(path / MANIFEST_FILE)
    lexical = [path / LEXICAL_FILE, path / LEGACY_LEXICAL_FILE]
    if manifest.blend and not any(f.is_file() for f in lexical):
        raise BundleError(
            f"model bundle {path} blends a lexical model but lacks {LEXICAL_FILE}"
        )
    return Bundle(path, manifest)


def write_manifest(path: Path, manifest: Manifest) -> None:
    (path / MANIFEST_FILE).write_text(
        manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
    )
