"""Training arguments: validated in one place and saved with the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from triage.text import MIN_WINDOW_TOKENS, max_overlap


@dataclass
class TrainingArguments:
    """Everything that decides a fine-tuning run.

    Paths are stored as strings so the arguments round-trip through JSON unchanged (they are
    written into every checkpoint and into the bundle's manifest).
    """

    spec: str
    output_dir: str
    base_model: str | None = None
    max_tokens: int = 128
    chunk_overlap: int = 32
    batch_size: int = 16
    epochs: int = 3
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    metadata_dropout: float = 0.5
    key_dropout: float = 0.2
    patience: int = 1
    checkpoint_every: int = 100
    eval_batch_size: int = 32
    max_train_rows: int | None = None
    seed: int = 13
    threads: int | None = None
    init_from: str | None = (
        None  # a run's best.pt to start from instead of the base weights
    )

    def __post_init__(self) -> None:
        _check(
            MIN_WINDOW_TOKENS <= self.max_tokens <= 512,
            "max_tokens",
            self.max_tokens,
            f"between {MIN_WINDOW_TOKENS} and 512",
        )
        _check(
            0 <= self.chunk_overlap <= max_overlap(self.max_tokens),
            "chunk_overlap",
            self.chunk_overlap,
            f"between 0 and {max_overlap(self.max_tokens)} for max_tokens "
            f"{self.max_tokens}",
        )
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "at least 1")
        _check(self.epochs >= 1, "epochs", self.epochs, "at least 1")
        _check(
            0 < self.learning_rate < 1, "learning_rate", self.learning_rate, "in (0, 1)"
        )
        _check(
            0 < self.head_learning_rate < 1,
            "head_learning_rate",
            self.head_learning_rate,
            "in (0, 1)",
        )
        _check(
            0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)"
        )
        _check(
            0 <= self.weight_decay < 1, "weight_decay", self.weight_decay, "in [0, 1)"
        )
        _check(
            0 <= self.metadata_dropout <= 1,
            "metadata_dropout",
            self.metadata_dropout,
            "in [0, 1]",
        )
        _check(0 <= self.key_dropout <= 1, "key_dropout", self.key_dropout, "in [0, 1]")
        _check(self.patience >= 0, "patience", self.patience, "0 or more")
        _check(
            self.checkpoint_every >= 1,
            "checkpoint_every",
            self.checkpoint_every,
            "at least 1",
        )
        if self.max_train_rows is not None:
            _check(
                self.max_train_rows >= 2,
                "max_train_rows",
                self.max_train_rows,
                "at least 2",
            )
        if self.init_from is not None and not Path(self.init_from).is_file():
            raise ValueError(f"init_from: no checkpoint at {self.init_from}")
        if not Path(self.spec).is_file():
            raise ValueError(f"spec: no dataset spec at {self.spec}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingArguments:
        return cls(**json.loads(text))


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
