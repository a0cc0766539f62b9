"""Metrics for the two heads, shared by evaluation, the export gate and later model comparison.

Escalation is judged the way a review team uses it: ranking quality (ROC-AUC, PR-AUC), recall
when only the top 10 % or 20 % of complaints can be reviewed, and calibration (expected
calibration error), never by accuracy on an imbalanced label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# scikit-learn is imported where a metric is computed, not here: importing it takes over a
# second, and the service imports this module at startup for shadow comparisons it may never run.


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-width probability bins, by bin size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(y[members].mean() - p[members].mean())
    return float(error)


def recall_at_fraction(y: np.ndarray, p: np.ndarray, fraction: float) -> float:
    """Share of all escalations found when only the top `fraction` of complaints is reviewed."""
    y, p = np.asarray(y), np.asarray(p)
    k = max(1, int(round(len(p) * fraction)))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].sum() / max(y.sum(), 1))


def escalation_metrics(y: Sequence[int], p: Sequence[float]) -> dict[str, float]:
    """Ranking, capacity and calibration metrics of escalation probabilities."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError(
            "escalation metrics need both escalated and non-escalated complaints"
        )

    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "recall_at_10pct": recall_at_fraction(y, p, 0.10),
        "recall_at_20pct": recall_at_fraction(y, p, 0.20),
        "ece": expected_calibration_error(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "n": int(len(y)),
        "positives": int(y.sum()),
    }


def top_label_calibration_error(
    y: Sequence[int], probabilities: np.ndarray, bins: int = 10
) -> float:
    """Expected calibration error of the predicted label: does a 0.8 top probability come
    true 80 % of the time?"""
    probabilities = np.asarray(probabilities, dtype=float)
    correct = probabilities.argmax(axis=1) == np.asarray(y, dtype=int)
    return expected_calibration_error(correct, probabilities.max(axis=1), bins)


def category_metrics(
    y: Sequence[int],
    predicted: Sequence[int],
    labels: Sequence[str],
    probabilities: np.ndarray | None = None,
) -> dict:
    """Macro-F1, accuracy and per-label F1; with the probabilities, also the calibration error
    of the top label (`ece`).

    Macro-F1 averages over the labels that occur in the truth or the predictions: a label the
    test split never holds and the model never predicts has no F1 (it is `None` in
    `per_class_f1`) rather than a zero that would lower the average for nothing the model
    did. A label predicted but never true still counts, with an F1 of 0.
    """
    from sklearn.metrics import accuracy_score, f1_score

    y, predicted = np.asarray(y, dtype=int), np.asarray(predicted, dtype=int)
    present = sorted(set(y.tolist()) | set(predicted.tolist()))
    per_class = f1_score(y, predicted, labels=present, average=None, zero_division=0)
    f1_of = dict(zip(present, per_class.tolist(), strict=True))
    calibration = (
        {"ece": top_label_calibration_error(y, probabilities)}
        if probabilities is not None
        else {}
    )
    return {
        **calibration,
        "macro_f1": float(np.mean(per_class)) if present else 0.0,
        "accuracy": float(accuracy_score(y, predicted)),
        "per_class_f1": {label: f1_of.get(i) for i, label in enumerate(labels)},
        "labels_in_macro_f1": len(present),
        "n": int(len(y)),
    }


def within_group_roc_auc(
    y: Sequence[int],
    p: Sequence[float],
    groups: Sequence[object],
    min_rows: int = 30,
    min_per_class: int = 5,
) -> dict[str, object]:
    """Mean ROC-AUC inside groups (companies) large and mixed enough to rank within.

    For one call center, which company answered is constant: this is what the text adds there.
    """
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    groups = np.asarray([str(g) for g in groups])
    scores = {}
    for group in np.unique(groups):
        members = groups == group
        positives = int(y[members].sum())
        if (
            members.sum() >= min_rows
            and min(positives, members.sum() - positives) >= min_per_class
        ):
            scores[str(group)] = float(roc_auc_score(y[members], p[members]))
    return {
        "mean_roc_auc": float(np.mean(list(scores.values()))) if scores else None,
        "groups": len(scores),
        "per_group": scores,
        "min_rows": min_rows,
        "min_per_class": min_per_class,
    }
