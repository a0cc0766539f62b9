"""Evaluate a bundle against the TF-IDF baseline on the same temporal split, in one run.

Usage: ``triage evaluate models/default --spec data/specs/cfpb.toml --output eval.json``.

Both are scored on the test split twice: with the dataset's metadata beside the text, and on
text alone (what a call center that sends no CFPB columns gets). Escalation is also scored inside
each company with enough labelled test complaints: for one call center the company is constant,
so that figure shows what the text itself adds. Every setting was chosen on validation; the test
split only reports.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np

from training.baseline import fit_head
from training.data import LoadedDataset
from triage.bundle import Bundle
from triage.errors import DatasetSpecError
from triage.evaluation import Probabilities, model_probabilities
from triage.metrics import category_metrics, escalation_metrics, within_group_roc_auc
from triage.scorer import Scorer

logger = logging.getLogger(__name__)

CONDITIONS = ("with_metadata", "text_only")


def _baseline_probabilities(data: LoadedDataset, with_metadata: bool) -> Probabilities:
    splits, keys = data.splits, data.spec.metadata_keys

    def part(split: str, label: str):
        rows = splits[split]
        y = np.array(rows[label])
        keep = np.flatnonzero(y >= 0)
        texts = [rows["text"][i] for i in keep]
        metadata = [rows["metadata"][i] for i in keep] if with_metadata else None
        return texts, metadata, y[keep]

    test = splits["test"]
    test_metadata = test["metadata"] if with_metadata else None
    escalation = category = None
    if data.spec.has_escalation:
        head = fit_head(
            "escalation",
            part("train", "escalation"),
            part("validation", "escalation"),
            keys,
        )
        escalation = head.predict_proba(test["text"], test_metadata)[:, 1]
    if data.spec.has_category:
        head = fit_head(
            "category", part("train", "category"), part("validation", "category"), keys
        )
        columns = head.predict_proba(test["text"], test_metadata)
        category = np.zeros((len(test), len(data.categories)))
        category[:, head.classifier.classes_] = columns
    return Probabilities(escalation, category)


def _metrics(data: LoadedDataset, probabilities: Probabilities) -> dict:
    test = data.splits["test"]
    result: dict[str, object] = {}
    if probabilities.escalation is not None:
        y = np.array(test["escalation"])
        known = y >= 0
        result["escalation"] = escalation_metrics(
            y[known], probabilities.escalation[known]
        )
        companies = [(m or {}).get("company") for m in test["metadata"]]
        result["escalation_within_company"] = within_group_roc_auc(
            y[known],
            probabilities.escalation[known],
            np.array(companies, dtype=object)[known],
        )
    if probabilities.category is not None:
        y = np.array(test["category"])
        known = y >= 0
        chosen = probabilities.category[known]
        result["category"] = category_metrics(
            y[known], chosen.argmax(axis=1), data.categories, chosen
        )
    return result


def _check_labels(bundle: Bundle, data: LoadedDataset) -> None:
    """Refuse a dataset labelled with other categories than the bundle's: its label indices
    would be compared with the wrong outputs."""
    ours = list(bundle.manifest.categories)
    if not ours or not data.spec.has_category or data.categories == ours:
        return
    unknown = [c for c in data.categories if c not in ours]
    if unknown:
        problem = f"labels {', '.join(unknown)} are not among the bundle's categories"
    else:
        problem = "its labels are in another order than the bundle's"
    raise DatasetSpecError(
        f"{data.spec.name}: {problem} ({', '.join(ours)}). Evaluate on data labelled with the "
        "bundle's categories: list them as `categories` in a spec, with a category_map for "
        "other names"
    )


def _machine() -> str:
    # training.card renders this module's tables, so it is imported here, not at the top.
    from training.card import machine_summary

    return machine_summary()


def evaluate_bundle(
    bundle: Bundle,
    data: LoadedDataset,
    threads: int | None = None,
    baseline: bool = True,
) -> dict:
    """Metrics of the bundle's served (int8) graph and of the baseline, on the test split.

    `baseline=False` skips fitting the baseline (used to re-check a manifest's own figures).
    """
    _check_labels(bundle, data)
    scorer = Scorer(bundle, threads=threads)
    test = data.splits["test"]
    if bundle.manifest.dataset.get("fingerprint") not in (None, data.fingerprint):
        logger.warning(
            "the dataset differs from the one %s was trained on", bundle.version
        )

    report: dict[str, object] = {
        "evaluated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "model_version": bundle.version,
        "dataset": data.spec.name,
        "metadata_keys": data.spec.metadata_keys,
        "machine": _machine(),
        "split": data.report["splits"]["test"],
        "escalation_label": data.spec.escalation_proxy,
        "model": {},
    }
    if bundle.manifest.blend:
        report["encoder"] = {}
    if baseline:
        report["baseline"] = {}

    for condition in CONDITIONS:
        with_metadata = condition == "with_metadata"
        metadata = test["metadata"] if with_metadata else None
        logger.info("scoring %d test complaints (%s)", len(test), condition)
        served, encoder = model_probabilities(scorer, test["text"], metadata)
        results = {"model": _metrics(data, served)}
        if encoder is not None:
            results["encoder"] = _metrics(data, encoder)
        if baseline:
            results["baseline"] = _metrics(
                data, _baseline_probabilities(data, with_metadata)
            )
        for side, metrics in results.items():
            if with_metadata:
                report[side].update(metrics)
            else:
                report[side]["text_only"] = metrics
    return report


def _row(name: str, metrics: dict) -> list[str]:
    def cell(head: str, key: str) -> str:
        value = metrics.get(head, {}).get(key) if head in metrics else None
        return "-" if value is None else f"{value:.3f}"

    within = metrics.get("escalation_within_company", {})
    mean = within.get("mean_roc_auc")
    return [
        name,
        cell("escalation", "roc_auc"),
        cell("escalation", "pr_auc"),
        cell("escalation", "recall_at_10pct"),
        cell("escalation", "recall_at_20pct"),
        cell("escalation", "ece"),
        "-" if mean is None else f"{mean:.3f} ({within['groups']})",
        cell("category", "macro_f1"),
        cell("category", "accuracy"),
    ]


TABLE_HEADER = [
    "model",
    "escalation* ROC-AUC",
    "PR-AUC",
    "recall@10%",
    "recall@20%",
    "ECE",
    "within-company ROC-AUC (companies)",
    "category macro-F1",
    "accuracy",
]


def table_rows(report: dict) -> list[list[str]]:
    """The evaluation table: served model, encoder alone (when blended) and baseline."""
    sides = (
        [("model", "triage model as served (int8 ONNX)")] if "model" in report else []
    )
    if "encoder" in report:
        sides.append(("encoder", "fine-tuned encoder alone (int8 ONNX)"))
    if "baseline" in report:
        sides.append(("baseline", "TF-IDF + LR baseline"))
    rows = []
    for condition, suffix in (
        ("with_metadata", "text + metadata"),
        ("text_only", "text only"),
    ):
        for side, name in sides:
            metrics = (
                report[side]
                if condition == "with_metadata"
                else report[side]["text_only"]
            )
            rows.append(_row(f"{name}, {suffix}", metrics))
    return rows


def markdown_table(report: dict) -> str:
    """The table as Markdown, with the proxy named under it."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    if report.get("escalation_label"):
        lines.append("")
        lines.append(f"\\* escalation is a proxy: {report['escalation_label']}.")
    return "\n".join(lines)


def evaluate_baseline(data: LoadedDataset) -> dict:
    """The baseline alone on the test split: for comparing label sets or datasets before training."""
    report: dict[str, object] = {
        "evaluated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "model_version": "baseline only",
        "dataset": data.spec.name,
        "metadata_keys": data.spec.metadata_keys,
        "machine": _machine(),
        "split": data.report["splits"]["test"],
        "escalation_label": data.spec.escalation_proxy,
        "baseline": _metrics(data, _baseline_probabilities(data, with_metadata=True)),
    }
    report["baseline"]["text_only"] = _metrics(
        data, _baseline_probabilities(data, with_metadata=False)
    )
    return report
