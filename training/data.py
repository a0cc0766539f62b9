"""Read a dataset spec's sources with HF `datasets` and build the temporal split.

The result is a `datasets.DatasetDict` with `train`, `validation` and `test`, each row holding
`id`, `text`, `metadata` (the spec's metadata keys, None where absent), `escalation` (1, 0, or -1
for no label), `category` (index into the label list, or -1), `time` and `source`.

The split is temporal: rows of dated sources are ordered by (time, id) and cut by the spec's
fractions, so a model is always judged on complaints that came after the ones it learned from.
A validation or test row whose text already appeared in an earlier split is dropped (template
complaints are common in CFPB data and would otherwise leak answers).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas

from triage.datasets import DatasetSpec, Source
from triage.errors import DatasetSpecError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_LOADERS = {"csv": "csv", "jsonl": "json", "parquet": "parquet"}


@dataclass(frozen=True)
class LoadedDataset:
    """The split dataset with the label names it was built against."""

    splits: datasets.DatasetDict
    categories: list[str]
    spec: DatasetSpec
    report: dict[str, object]

    @property
    def fingerprint(self) -> str:
        """A hash of every row's id, text and labels, recorded in the bundle's manifest."""
        digest = hashlib.sha256()
        for split in SPLITS:
            for row in self.splits[split]:
                digest.update(
                    f"{split}\t{row['id']}\t{row['escalation']}\t{row['category']}\n".encode()
                )
                digest.update(row["text"].encode())
        return digest.hexdigest()


def _read_source(spec: DatasetSpec, source: Source) -> datasets.Dataset:
    path = spec.resolve(source)
    if not path.exists():
        raise DatasetSpecError(f"{spec.name}: source file {path} does not exist")

    options: dict[str, object] = {}
    if source.format == "csv":
        # Read every column as text: ids and zip codes must not turn into numbers.
        header = pandas.read_csv(path, nrows=0).columns
        features = datasets.Features(
            {name: datasets.Value("string") for name in header}
        )
        options = {"features": features, "keep_default_na": False}
    table = datasets.load_dataset(
        _LOADERS[source.format], data_files=str(path), split="train", **options
    )

    wanted = [
        source.text_column,
        source.id_column,
        source.category_column,
        source.time_column,
    ]
    wanted += [source.escalation.column] if source.escalation else []
    wanted += source.metadata_columns
    missing = [c for c in wanted if c and c not in table.column_names]
    if missing:
        raise DatasetSpecError(
            f"{path.name}: column(s) {', '.join(missing)} not found; the file has "
            f"{', '.join(table.column_names)}. Map the right columns in the spec "
            "(text_column, category_column, escalation.column, time_column, metadata_columns)."
        )
    return table


def _label_rows(
    spec: DatasetSpec, source: Source, table: datasets.Dataset
) -> list[dict]:
    rows = []
    unknown: dict[str, int] = {}
    for index, record in enumerate(table):
        text = (record[source.text_column] or "").strip()
        if not text:
            continue

        category = None
        if source.category_column:
            raw = (record[source.category_column] or "").strip()
            category = source.category_map.get(raw) if source.category_map else raw
            if category is None:
                unknown[raw] = unknown.get(raw, 0) + 1
                continue
            if category == "":
                continue

        escalation = -1
        if source.escalation:
            rule = source.escalation
            value = (record[rule.column] or "").strip()
            if value in rule.positive:
                escalation = 1
            elif value in rule.negative:
                escalation = 0
            elif value not in rule.unlabelled:
                raise DatasetSpecError(
                    f"{source.path}: {rule.column} value {value!r} is in none of positive, negative "
                    "or unlabelled; add it to one of them in the spec"
                )

        metadata = dict.fromkeys(spec.metadata_keys)
        for column in source.metadata_columns:
            value = (record[column] or "").strip()
            metadata[column] = value or None

        rows.append(
            {
                "id": f"{Path(source.path).stem}:{record[source.id_column] if source.id_column else index}",
                "text": text,
                "metadata": metadata,
                "escalation": escalation,
                "category_name": category,
                "time": (record[source.time_column] or "")
                if source.time_column
                else "",
                "source": Path(source.path).name,
            }
        )

    if unknown:
        listed = ", ".join(f"{k!r} ({n})" for k, n in sorted(unknown.items()))
        raise DatasetSpecError(
            f"{source.path}: category value(s) missing from category_map: {listed}. "
            'Map each to a label, or to "" to drop those rows.'
        )
    return rows


def _temporal_cut(spec: DatasetSpec, rows: list[dict]) -> dict[str, list[dict]]:
    rows = sorted(rows, key=lambda r: (r["time"], r["id"]))
    n_train = round(len(rows) * spec.split.train)
    n_validation = round(len(rows) * spec.split.validation)
    return {
        "train": rows[:n_train],
        "validation": rows[n_train : n_train + n_validation],
        "test": rows[n_train + n_validation :],
    }


def _drop_seen_texts(parts: dict[str, list[dict]]) -> dict[str, int]:
    seen: set[str] = set()
    dropped = {}
    for split in SPLITS:
        kept = []
        for row in parts[split]:
            key = " ".join(row["text"].lower().split())
            if key in seen and split != "train":
                continue
            kept.append(row)
        dropped[split] = len(parts[split]) - len(kept)
        seen.update(" ".join(r["text"].lower().split()) for r in kept)
        parts[split] = kept
    return dropped


def load_dataset(spec: DatasetSpec) -> LoadedDataset:
    """Read every source of `spec`, derive labels and return the temporal split."""
    dated, undated = [], []
    for source in spec.sources:
        rows = _label_rows(spec, source, _read_source(spec, source))
        (dated if source.split == "temporal" else undated).extend(rows)
        logger.info("read %d rows from %s", len(rows), source.path)

    parts = _temporal_cut(spec, dated)
    parts["train"] = undated + parts["train"]
    dropped = _drop_seen_texts(parts)

    categories = spec.categories or sorted(
        {
            r["category_name"]
            for rows in parts.values()
            for r in rows
            if r["category_name"]
        }
    )
    index = {name: i for i, name in enumerate(categories)}
    for rows in parts.values():
        for row in rows:
            name = row.pop("category_name")
            if name is not None and name not in index:
                raise DatasetSpecError(
                    f"label {name!r} is not in the spec's categories list"
                )
            row["category"] = index[name] if name is not None else -1

    splits = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(parts[s]) for s in SPLITS}
    )
    report = _describe(parts, categories, dropped)
    logger.info("split %s: %s", spec.name, json.dumps(report["rows"]))
    return LoadedDataset(splits=splits, categories=categories, spec=spec, report=report)


def _describe(
    parts: dict[str, list[dict]], categories: list[str], dropped: dict[str, int]
) -> dict:
    def summary(rows: list[dict]) -> dict[str, object]:
        times = [r["time"] for r in rows if r["time"]]
        return {
            "rows": len(rows),
            "escalation_labelled": sum(r["escalation"] >= 0 for r in rows),
            "escalation_positive": sum(r["escalation"] == 1 for r in rows),
            "category_counts": {
                c: sum(r["category"] == i for r in rows)
                for i, c in enumerate(categories)
            },
            "time_range": [min(times), max(times)] if times else None,
        }

    return {
        "rows": {s: len(parts[s]) for s in SPLITS},
        "dropped_as_seen_in_earlier_split": dropped,
        "splits": {s: summary(parts[s]) for s in SPLITS},
    }
