"""Read a dataset spec's files, derive labels and split the rows: the one loader of the project.

Training wraps the result in HF `datasets` tables (`training.data`); the public Python API
evaluates on it directly. Files are read with pandas, imported inside `read_source`: pandas
belongs to the training install, not the serving one, so scoring never loads it, and a missing
pandas gets an install hint instead of a bare ModuleNotFoundError.

Each row is a dict with `id`, `text`, `metadata` (the spec's metadata keys, None where absent),
`escalation` (1, 0, or -1 for no label), `category` (index into the label list, or -1), `time`
and `source`. Every problem with a file (missing, empty, a column that is not there or holds the
wrong type, a label the spec does not know) is a `DatasetSpecError` that names the file, what
was expected, what was found, and the spec field or command-line flag that fixes it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from triage.datasets import DatasetSpec, Source, load_spec
from triage.errors import DatasetSpecError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")

# The command-line flag that sets each spec field, named in every column error.
FLAGS = {
    "text_column": "--text-column",
    "id_column": "--id-column",
    "category_column": "--category-column",
    "time_column": "--time-column",
    "escalation.column": "--escalation-column",
    "split_column": "--split-column",
    "metadata_columns": "--metadata-column",
}


@dataclass(frozen=True)
class SplitDataset:
    """A spec's rows split into train, validation and test, with the label names they use."""

    parts: dict[str, list[dict]]
    categories: list[str]
    spec: DatasetSpec
    report: dict[str, object]

    @property
    def fingerprint(self) -> str:
        """A hash of every row's id, text and labels, recorded in a bundle's manifest."""
        digest = hashlib.sha256()
        for split in SPLITS:
            for row in self.parts[split]:
                digest.update(
                    f"{split}\t{row['id']}\t{row['escalation']}\t{row['category']}\n".encode()
                )
                digest.update(row["text"].encode())
        return digest.hexdigest()


def _flag(field: str) -> str:
    return FLAGS[field.split("[")[0]]


def _read_frame(path: Path, source: Source):
    try:
        import pandas
    except ModuleNotFoundError:
        raise ImportError(
            "reading dataset files needs pandas, part of the training tools: "
            "pip install -e '.[train]'"
        ) from None

    if path.stat().st_size == 0:
        raise DatasetSpecError(_empty_file(path, source.format))
    try:
        if source.format == "csv":
            # Every column as text: ids and zip codes must not turn into numbers.
            return pandas.read_csv(path, dtype=str, keep_default_na=False)
        if source.format == "jsonl":
            return pandas.read_json(path, lines=True, dtype=False)
        return pandas.read_parquet(path)
    except pandas.errors.EmptyDataError:
        raise DatasetSpecError(_empty_file(path, source.format)) from None
    except (ValueError, pandas.errors.ParserError, OSError) as error:
        raise DatasetSpecError(
            f"{path.name} could not be read as {source.format}: {error}. Check the file, "
            "or set format (csv, jsonl or parquet) in the spec or with --format"
        ) from None


def _guess(field: str, column: str, frame) -> str:
    """The column a user most likely meant: the one holding the longest text for the text
    field, else the closest name, else a placeholder."""
    from pandas.api.types import is_string_dtype

    found = [str(c) for c in frame.columns]
    if field == "text_column" and len(frame):
        lengths = {
            c: frame[c].astype(str).str.len().mean()
            for c in found
            if is_string_dtype(frame[c])
        }
        if lengths:
            return max(lengths, key=lengths.get)
    close = difflib.get_close_matches(column, found, n=1, cutoff=0.6)
    return close[0] if close else "NAME"


def _check_columns(path: Path, source: Source, frame) -> None:
    found = [str(c) for c in frame.columns]
    missing = {f: c for f, c in source.columns().items() if c not in found}
    if not missing:
        return
    problems = [
        f"no column {column!r} for {field}; map it with {_flag(field)} "
        f"{_guess(field, column, frame)} (or {field.split('[')[0]} in the spec)"
        for field, column in missing.items()
    ]
    raise DatasetSpecError(
        f"{path.name}: {'; '.join(problems)}. The file has the columns: {', '.join(found)}"
    )


def _as_text(path: Path, field: str, column: str, value: object) -> str | None:
    """A cell as text: strings pass, numbers and booleans become text, anything else is an error."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    if field != "text_column" and isinstance(value, bool | int | float):
        return str(value)
    kind = type(value).__name__
    raise DatasetSpecError(
        f"{path.name}: column {column!r} ({field}) holds {kind} values such as {value!r}; "
        f"expected text. Map a text column with {_flag(field)} (or {field.split('[')[0]} "
        "in the spec)"
    )


def read_source(spec: DatasetSpec, source: Source) -> list[dict[str, str | None]]:
    """The rows of one source file, each cell the spec reads as text (or None)."""
    path = spec.resolve(source)
    if not path.exists():
        raise DatasetSpecError(f"{spec.name}: source file {path} does not exist")

    frame = _read_frame(path, source)
    found = [str(c) for c in frame.columns]
    _check_columns(path, source, frame)
    if len(frame) == 0:
        raise DatasetSpecError(
            f"{path.name} has a header ({', '.join(found)}) but no rows"
        )

    fields = source.columns()
    records = frame[list(dict.fromkeys(fields.values()))].to_dict("records")
    return [
        {
            column: _as_text(path, field, column, record[column])
            for field, column in fields.items()
        }
        for record in records
    ]


def _category_of(source: Source, record: dict, unknown: dict[str, int]) -> str | None:
    """The row's label, "" to drop the row, or None when the source has no category."""
    if not source.category_column:
        return None
    raw = (record[source.category_column] or "").strip()
    if source.category_map is None:
        return raw
    label = source.category_map.get(raw)
    if label is None:
        unknown[raw] = unknown.get(raw, 0) + 1
        return ""
    return label


def _escalation_of(source: Source, record: dict) -> int:
    rule = source.escalation
    if rule is None:
        return -1
    value = (record[rule.column] or "").strip()
    if value in rule.positive:
        return 1
    if value in rule.negative:
        return 0
    if value not in rule.unlabelled:
        raise DatasetSpecError(
            f"{source.path}: {rule.column} value {value!r} is in none of positive, negative "
            "or unlabelled; add it to one of them in the spec (with --escalation-column: "
            "1/true/yes, 0/false/no, or empty)"
        )
    return -1


def _split_of(source: Source, record: dict, unknown: dict[str, int]) -> str | None:
    """Where an undated row goes: a split name, "" to drop it, None for the temporal cut."""
    if source.split == "temporal":
        return None
    if source.split != "column":
        return source.split
    raw = (record[source.split_column] or "").strip()
    if raw not in source.split_values:
        unknown[raw] = unknown.get(raw, 0) + 1
        return ""
    return source.split_values[raw]


def _empty_file(path: Path, file_format: str) -> str:
    expected = {
        "csv": "a CSV file with a header row and at least one row",
        "jsonl": "a JSONL file with at least one JSON object per line",
        "parquet": "a Parquet file with at least one row",
    }[file_format]
    return f"{path.name} is empty: expected {expected} ({path})"


def _label_rows(spec: DatasetSpec, source: Source, records: list[dict]) -> list[dict]:
    rows = []
    unknown_labels: dict[str, int] = {}
    unknown_splits: dict[str, int] = {}
    empty = 0
    for index, record in enumerate(records):
        text = (record[source.text_column] or "").strip()
        if not text:
            empty += 1
            continue
        category = _category_of(source, record, unknown_labels)
        if category == "":
            continue
        split = _split_of(source, record, unknown_splits)
        if split == "":
            continue

        metadata = dict.fromkeys(spec.metadata_keys)
        for column in source.metadata_columns:
            metadata[column] = (record[column] or "").strip() or None
        row_id = record[source.id_column] if source.id_column else index
        rows.append(
            {
                "id": f"{Path(source.path).stem}:{row_id}",
                "text": text,
                "metadata": metadata,
                "escalation": _escalation_of(source, record),
                "category_name": category,
                "time": (record[source.time_column] or "")
                if source.time_column
                else "",
                "source": Path(source.path).name,
                "split": split,
            }
        )

    _refuse_unknown(source, unknown_labels, unknown_splits)
    if empty:
        logger.warning(
            "%s: %d of %d rows have an empty %s and are left out",
            source.path,
            empty,
            len(records),
            source.text_column,
        )
    return rows


def _refuse_unknown(
    source: Source, labels: dict[str, int], splits: dict[str, int]
) -> None:
    if labels:
        listed = ", ".join(f"{k!r} ({n})" for k, n in sorted(labels.items()))
        raise DatasetSpecError(
            f"{source.path}: {source.category_column} value(s) missing from category_map: "
            f'{listed}. Map each to a label, or to "" to drop those rows.'
        )
    if splits:
        listed = ", ".join(f"{k!r} ({n})" for k, n in sorted(splits.items()))
        known = ", ".join(sorted(source.split_values or {}))
        raise DatasetSpecError(
            f"{source.path}: {source.split_column} value(s) {listed} are not in "
            f"split_values ({known}). Add each to split_values (to train, validation, "
            'test, or "" to drop those rows)'
        )


def _share(row_id: str, salt: str) -> float:
    """A row's stable position in [0, 1): the same row lands in the same split every time."""
    digest = hashlib.sha256(f"{salt}\t{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _assign(spec: DatasetSpec, rows: list[dict]) -> dict[str, list[dict]]:
    # Temporal rows: ordered by (time, id) and cut by the spec's fractions
    dated = sorted(
        (r for r in rows if r["split"] is None), key=lambda r: (r["time"], r["id"])
    )
    n_train = round(len(dated) * spec.split.train)
    n_validation = round(len(dated) * spec.split.validation)
    parts = {split: [r for r in rows if r["split"] == split] for split in SPLITS}
    parts["train"] += dated[:n_train]
    parts["validation"] += dated[n_train : n_train + n_validation]
    parts["test"] += dated[n_train + n_validation :]

    # Random rows: by a hash of their id, so the split is the same on every machine
    for row in (r for r in rows if r["split"] == "random"):
        share = _share(row["id"], spec.name)
        if share < spec.split.train:
            parts["train"].append(row)
        elif share < spec.split.train + spec.split.validation:
            parts["validation"].append(row)
        else:
            parts["test"].append(row)

    # A validation share taken from training, for official splits without one
    if spec.split.validation_from_train:
        held = [
            r
            for r in parts["train"]
            if _share(r["id"], "validation") < spec.split.validation_from_train
        ]
        taken = {id(r) for r in held}
        parts["train"] = [r for r in parts["train"] if id(r) not in taken]
        parts["validation"] += held
    return parts


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


def _index_categories(spec: DatasetSpec, parts: dict[str, list[dict]]) -> list[str]:
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
            row.pop("split")
            if name is not None and name not in index:
                raise DatasetSpecError(
                    f"{row['source']}: label {name!r} is not in the spec's categories list "
                    f"({', '.join(categories)}); add it there, or map it with category_map"
                )
            row["category"] = index[name] if name is not None else -1
    return categories


def read_dataset(spec: DatasetSpec | str | Path) -> SplitDataset:
    """Read every source of a spec (a `DatasetSpec` or a spec file), derive labels and return
    the split rows.

    >>> from triage import read_dataset
    >>> data = read_dataset("data/specs/banking77.toml")
    >>> len(data.parts["test"]), len(data.categories)
    (3080, 77)
    """
    if not isinstance(spec, DatasetSpec):
        spec = load_spec(Path(spec))
    rows = []
    for source in spec.sources:
        labelled = _label_rows(spec, source, read_source(spec, source))
        rows.extend(labelled)
        logger.info("read %d rows from %s", len(labelled), source.path)

    parts = _assign(spec, rows)
    dropped = (
        _drop_seen_texts(parts)
        if spec.split.drop_seen_texts
        else dict.fromkeys(SPLITS, 0)
    )
    categories = _index_categories(spec, parts)
    report = _describe(parts, categories, dropped)
    logger.info("split %s: %s", spec.name, json.dumps(report["rows"]))
    return SplitDataset(parts=parts, categories=categories, spec=spec, report=report)


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
