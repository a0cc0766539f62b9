"""Drift: how recent complaints, predictions and outcomes differ from a model's training data.

Four views, each with a plain number and a rule of thumb for "look at this":

- category mix: Jensen-Shannon distance between the training labels and the recent predicted
  categories (and the managers' true categories, where resolved); above 0.1 is worth a look;
- escalation rate: the training positive rate against the recent mean predicted probability
  and the recent real rate among resolved cases;
- text length: the two-sample Kolmogorov-Smirnov test on character counts (p below 0.01);
- text embeddings: a classifier asked to tell training texts from recent ones by the
  champion's own embeddings (cross-validated ROC-AUC: 0.5 means indistinguishable, above
  0.75 a clear shift), and the cosine distance between the two mean embeddings.

scipy supplies the distances and the test, scikit-learn the classifier; the embeddings come
from the champion's ONNX graph.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cosine, jensenshannon
from scipy.stats import ks_2samp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from training.data import load_dataset
from triage.datasets import load_spec
from triage.scorer import Complaint, Scorer

logger = logging.getLogger(__name__)

JS_ALERT, KS_ALERT, AUC_ALERT = 0.1, 0.01, 0.75


@dataclass(frozen=True)
class Recent:
    """Recent complaints as stored, with what the model said and what managers found."""

    texts: list[str]
    metadata: list[dict | None]
    predicted_categories: list[str | None]
    escalation_probabilities: list[float | None]
    escalated: list[bool]  # resolved cases only
    true_categories: list[str]  # resolved cases only


@dataclass(frozen=True)
class Training:
    texts: list[str]
    metadata: list[dict | None]
    categories: list[str]
    escalation_rate: float | None


def training_side(spec_path: Path, sample: int, seed: int = 13) -> Training:
    """A sample of the training split the champion learned from (read through its spec)."""
    data = load_dataset(load_spec(spec_path))
    rows = data.splits["train"]
    picked = random.Random(seed).sample(range(len(rows)), min(sample, len(rows)))
    chosen = rows.select(picked)
    labels = [data.categories[i] for i in rows["category"] if i >= 0]
    known = [e for e in rows["escalation"] if e >= 0]
    return Training(
        texts=list(chosen["text"]),
        metadata=list(chosen["metadata"]),
        categories=labels,
        escalation_rate=float(np.mean(known)) if known else None,
    )


def _distribution(labels: Sequence[str], order: Sequence[str]) -> np.ndarray:
    counts = Counter(labels)
    values = np.array([counts.get(label, 0) for label in order], dtype=float)
    return values / max(values.sum(), 1.0)


def category_drift(training: Training, recent: Recent) -> dict:
    order = sorted(
        set(training.categories)
        | {c for c in recent.predicted_categories if c}
        | set(recent.true_categories)
    )
    base = _distribution(training.categories, order)
    report = {"training": dict(zip(order, base.round(4).tolist(), strict=True))}
    predicted = [c for c in recent.predicted_categories if c]
    if predicted:
        mix = _distribution(predicted, order)
        report["recent_predicted"] = dict(
            zip(order, mix.round(4).tolist(), strict=True)
        )
        report["js_distance_predicted"] = float(jensenshannon(base, mix, base=2))
    if recent.true_categories:
        truth = _distribution(recent.true_categories, order)
        report["js_distance_true"] = float(jensenshannon(base, truth, base=2))
    worst = max(
        report.get("js_distance_predicted", 0.0), report.get("js_distance_true", 0.0)
    )
    report["alert"] = worst > JS_ALERT
    return report


def escalation_drift(training: Training, recent: Recent) -> dict:
    predicted = [p for p in recent.escalation_probabilities if p is not None]
    return {
        "training_rate": training.escalation_rate,
        "recent_mean_probability": float(np.mean(predicted)) if predicted else None,
        "recent_resolved_rate": float(np.mean(recent.escalated))
        if recent.escalated
        else None,
        "resolved_cases": len(recent.escalated),
    }


def length_drift(training: Training, recent: Recent) -> dict:
    old = [len(t) for t in training.texts]
    new = [len(t) for t in recent.texts]
    test = ks_2samp(old, new)
    return {
        "training_median_chars": float(np.median(old)),
        "recent_median_chars": float(np.median(new)),
        "ks_statistic": float(test.statistic),
        "ks_p_value": float(test.pvalue),
        "alert": bool(test.pvalue < KS_ALERT),
    }


def embedding_drift(scorer: Scorer, training: Training, recent: Recent) -> dict:
    """How well the champion's own embeddings tell training texts from recent ones."""
    old = _embed(scorer, training.texts, training.metadata)
    new = _embed(scorer, recent.texts, recent.metadata)
    features = np.vstack([old, new])
    origin = np.r_[np.zeros(len(old)), np.ones(len(new))]
    folds = int(min(5, len(old), len(new)))
    report = {"cosine_distance_of_means": float(cosine(old.mean(0), new.mean(0)))}
    if folds >= 2:
        scores = cross_val_score(
            LogisticRegression(max_iter=1000, class_weight="balanced"),
            features,
            origin,
            cv=folds,
            scoring="roc_auc",
        )
        report["domain_classifier_roc_auc"] = float(scores.mean())
        report["alert"] = bool(scores.mean() > AUC_ALERT)
    return report


def _embed(scorer: Scorer, texts: Sequence[str], metadata: Sequence) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), 32):
        batch = [
            Complaint(t, m)
            for t, m in zip(
                texts[start : start + 32], metadata[start : start + 32], strict=True
            )
        ]
        parts.append(scorer.raw_scores(batch).embedding)
    return np.vstack(parts)


def drift_report(scorer: Scorer, training: Training, recent: Recent) -> dict:
    if len(recent.texts) < 2:
        raise ValueError(
            f"{len(recent.texts)} recent case(s); drift needs at least 2: widen --days"
        )
    report = {
        "model_version": scorer.version,
        "training_sample": len(training.texts),
        "recent_cases": len(recent.texts),
        "category": category_drift(training, recent),
        "escalation": escalation_drift(training, recent),
        "length": length_drift(training, recent),
        "embedding": embedding_drift(scorer, training, recent),
    }
    report["alerts"] = [
        name
        for name in ("category", "length", "embedding")
        if report[name].get("alert")
    ]
    logger.info("drift alerts: %s", report["alerts"] or "none")
    return report
