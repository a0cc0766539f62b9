"""Retrain from resolved cases: build the training set, fine-tune and export a challenger.

Resolved cases join the base dataset as extra training rows: each case counts `case_weight`
times, its outcome's escalation flag is the escalation label (a manager's decision, not the base
dataset's proxy), and its category is a label if the champion has it or if enough cases carry
it (a new label). Cases whose category is neither still teach escalation. The base dataset's
validation split calibrates and gates the export as in `triage export`; the promotion gate on
the held-out recent cases is `triage.retraining.gate`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.args import TrainingArguments
from training.export import export_run
from training.finetune import BEST, train
from triage.datasets import DatasetSpec, load_spec
from triage.retraining import ResolvedCase

logger = logging.getLogger(__name__)

LABELLED_CASES = "cases-labelled.jsonl"
ESCALATION_ONLY_CASES = "cases-escalation-only.jsonl"


def _replicas(weight: float, rng: random.Random) -> int:
    """How many copies of a case to write: the integer part, plus one with the remainder's odds."""
    whole = int(weight)
    return whole + (1 if rng.random() < weight - whole else 0)


def write_training_spec(
    base_spec: Path,
    cases: Sequence[ResolvedCase],
    folder: Path,
    categories: Sequence[str],
    case_weight: float = 1.0,
    seed: int = 13,
) -> Path:
    """A spec of the base sources plus the cases (as training-only sources), written to
    `folder`; `categories` is the challenger's label list, base labels first."""
    if case_weight <= 0:
        raise ValueError(f"case weight must be positive, got {case_weight}")
    base = load_spec(base_spec)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    keys = list(base.metadata_keys)

    labelled, escalation_only = [], []
    for case in cases:
        row = {
            "id": case.case_id,
            "text": case.text,
            "escalated": "yes" if case.escalated else "no",
            "category": case.category,
            **{k: _metadata_value(case, k) for k in keys},
        }
        target = labelled if case.category in set(categories) else escalation_only
        for copy in range(_replicas(case_weight, rng)):
            target.append({**row, "id": f"{case.case_id}#{copy}"})
    _write_jsonl(folder / LABELLED_CASES, labelled)
    _write_jsonl(folder / ESCALATION_ONLY_CASES, escalation_only)

    sources = [
        {**s.model_dump(exclude_none=True), "path": str(base.resolve(s))}
        for s in base.sources
    ]
    case_source = {
        "format": "jsonl",
        "text_column": "text",
        "id_column": "id",
        "metadata_columns": keys,
        "split": "train",
        "escalation": {
            "column": "escalated",
            "positive": ["yes"],
            "negative": ["no"],
            "proxy": "a manager's recorded outcome",
        },
    }
    if labelled:
        sources.append(
            {**case_source, "path": LABELLED_CASES, "category_column": "category"}
        )
    if escalation_only:
        sources.append({**case_source, "path": ESCALATION_ONLY_CASES})

    spec = DatasetSpec(
        name=f"{base.name}-cases",
        description=f"{base.name} plus {len(cases)} resolved cases",
        attribution=base.attribution,
        sources=sources,
        categories=list(categories),
        metadata_keys=keys,
        split=base.split,
        root=folder,
    )
    path = folder / "spec.json"
    path.write_text(spec.model_dump_json(indent=2))
    logger.info(
        "training set: %d labelled and %d escalation-only case rows beside %s",
        len(labelled),
        len(escalation_only),
        base.name,
    )
    return path


def _metadata_value(case: ResolvedCase, key: str) -> str:
    value = (case.metadata or {}).get(key)
    return "" if value is None else str(value)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def train_challenger(
    spec: Path,
    run: Path,
    bundle: Path,
    *,
    base_model: str | None = None,
    init_from: str | None = None,
    epochs: int = 3,
    batch_size: int = 16,
    max_train_rows: int | None = None,
    threads: int | None = None,
) -> Path:
    """Fine-tune on `spec` into `run` and export the challenger bundle to `bundle`."""
    args = TrainingArguments(
        spec=str(spec),
        output_dir=str(run),
        base_model=base_model,
        init_from=init_from,
        epochs=epochs,
        batch_size=batch_size,
        max_train_rows=max_train_rows,
        threads=threads,
    )
    train(args)
    return export_run(run, bundle)


def checkpoint_of(run: Path) -> Path:
    return run / BEST


def suspicious_labels(
    cases: Sequence[ResolvedCase], folds: int = 5, seed: int = 13
) -> list[dict]:
    """Resolved cases whose outcome looks wrong, for a manager to recheck.

    Out-of-fold probabilities come from TF-IDF + logistic regression (fine-tuning K models
    would take hours); cleanlab's confident learning flags the cases whose recorded escalation
    flag or category disagrees with what the rest of the cases say.
    """
    from cleanlab.filter import find_label_issues
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    texts = [c.text for c in cases]
    features = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True
    ).fit_transform(texts)
    found: dict[str, set[str]] = {}
    for field, labels in (
        ("escalated", [str(c.escalated) for c in cases]),
        ("category", [c.category for c in cases]),
    ):
        names, y = np.unique(labels, return_inverse=True)
        smallest = np.bincount(y).min() if len(names) > 1 else 0
        if len(names) < 2 or smallest < 2:
            continue
        splitter = StratifiedKFold(
            min(folds, int(smallest)), shuffle=True, random_state=seed
        )
        probabilities = cross_val_predict(
            LogisticRegression(max_iter=1000, class_weight="balanced"),
            features,
            y,
            cv=splitter,
            method="predict_proba",
        )
        for index in np.flatnonzero(find_label_issues(y, probabilities)):
            found.setdefault(cases[index].case_id, set()).add(field)
    return [
        {"case_id": case_id, "fields": sorted(fields)}
        for case_id, fields in sorted(found.items())
    ]
