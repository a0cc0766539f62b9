"""The split dataset as HF `datasets` tables, for fine-tuning, export and evaluation.

Reading, labelling and splitting are `triage.data`'s (one loader for training and the public
API); this module wraps its rows in a `datasets.DatasetDict` with `train`, `validation` and
`test`, each row holding `id`, `text`, `metadata`, `escalation` (1, 0, or -1 for no label),
`category` (index into the label list, or -1), `time` and `source`.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from triage.data import SPLITS, read_dataset
from triage.datasets import DatasetSpec


@dataclass(frozen=True)
class LoadedDataset:
    """The split dataset with the label names it was built against."""

    splits: datasets.DatasetDict
    categories: list[str]
    spec: DatasetSpec
    report: dict[str, object]
    # The rows' hash (`SplitDataset.fingerprint`), recorded in a bundle's manifest.
    fingerprint: str


def load_dataset(spec: DatasetSpec) -> LoadedDataset:
    """Read every source of `spec`, derive labels and return the split as `datasets` tables."""
    split = read_dataset(spec)
    tables = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(split.parts[s]) for s in SPLITS}
    )
    return LoadedDataset(
        splits=tables,
        categories=split.categories,
        spec=spec,
        report=split.report,
        fingerprint=split.fingerprint,
    )
