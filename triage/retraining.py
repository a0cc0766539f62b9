"""Learning from resolved cases: the held-out set, new labels, and the promotion gate.

A manager's outcome is the only real escalation label the product gets. These functions decide
what a retrain learns from and whether its challenger may replace the champion. They are pure:
the cases come in as `ResolvedCase` values and the models as `Scorer`s, so the same code serves
`triage retrain`, `triage models compare` and the tests.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from triage.metrics import escalation_metrics
from triage.scorer import Complaint, Scorer

logger = logging.getLogger(__name__)

# Metrics where a smaller value is better; every other reported metric is better larger.
LOWER_IS_BETTER = {"escalation.ece", "escalation.brier"}
GATED = (
    "escalation.roc_auc",
    "escalation.pr_auc",
    "escalation.recall_at_20pct",
    "escalation.ece",
    "escalation.brier",
    "category.macro_f1_shared",
    "category.accuracy_shared",
)


@dataclass(frozen=True)
class ResolvedCase:
    """A case with the current outcome a manager recorded."""

    case_id: str
    text: str
    metadata: Mapping[str, object] | None
    escalated: bool
    category: str
    created_at: datetime


def split_holdout(
    cases: Sequence[ResolvedCase], fraction: float, minimum: int
) -> tuple[list[ResolvedCase], list[ResolvedCase]]:
    """(train, held out): the most recent `fraction` of cases (at least `minimum`) are held out,
    so both models are judged on complaints that came after everything the challenger saw."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    ordered = sorted(cases, key=lambda c: (c.created_at, c.case_id))
    held = max(minimum, int(round(len(ordered) * fraction)))
    if held >= len(ordered):
        raise ValueError(
            f"{len(ordered)} resolved cases are too few to hold out {held} and train on "
            "the rest; record more outcomes or lower --min-holdout"
        )
    train, holdout = ordered[:-held], ordered[-held:]
    if len({c.escalated for c in holdout}) < 2:
        raise ValueError(
            f"the {held} most recent resolved cases are all "
            f"{'escalated' if holdout[0].escalated else 'not escalated'}; the gate needs both "
            "kinds: record more outcomes or raise --holdout"
        )
    return train, holdout


def new_labels(
    cases: Sequence[ResolvedCase], known: Sequence[str], min_examples: int
) -> tuple[list[str], dict[str, int]]:
    """Categories managers entered that the model lacks: (those with enough examples to become
    labels, in order of count; every unknown category with its count)."""
    counts = Counter(c.category for c in cases if c.category not in set(known))
    accepted = [label for label, n in counts.most_common() if n >= min_examples]
    return accepted, dict(counts)


@dataclass
class HoldoutReport:
    """One model's scores on the held-out resolved cases."""

    version: str
    metrics: dict[str, float]
    per_label_f1: dict[str, float] = field(default_factory=dict)


def holdout_report(
    scorer: Scorer, cases: Sequence[ResolvedCase], shared: Sequence[str]
) -> HoldoutReport:
    """Escalation metrics on every case; category metrics on the cases whose true category is
    one of `shared` (labels both compared models know), so a new label cannot count against
    the model that never had it."""
    from sklearn.metrics import (
        f1_score,
    )  # imported here: the service imports this module

    escalation, category = scorer.probabilities(
        [Complaint(c.text, c.metadata) for c in cases]
    )
    metrics: dict[str, float] = {}
    if escalation is not None:
        found = escalation_metrics([int(c.escalated) for c in cases], escalation)
        metrics |= {f"escalation.{k}": v for k, v in found.items()}

    per_label: dict[str, float] = {}
    labels = scorer.bundle.manifest.categories
    if category is not None:
        predicted = [labels[i] for i in np.argmax(category, axis=1)]
        truth = [c.category for c in cases]
        inside = [i for i, t in enumerate(truth) if t in set(shared)]
        if inside:
            y = [truth[i] for i in inside]
            p = [predicted[i] for i in inside]
            metrics["category.macro_f1_shared"] = float(
                f1_score(y, p, labels=list(shared), average="macro", zero_division=0)
            )
            metrics["category.accuracy_shared"] = float(np.mean(np.equal(y, p)))
            metrics["category.n_shared"] = len(inside)
        for label in sorted(set(truth) | set(labels)):
            if label in truth:
                per_label[label] = float(
                    f1_score(
                        truth,
                        predicted,
                        labels=[label],
                        average="macro",
                        zero_division=0,
                    )
                )
    return HoldoutReport(scorer.version, metrics, per_label)


@dataclass
class GateDecision:
    passed: bool
    primary: str
    reasons: list[str]
    deltas: dict[str, float]


def gate(
    champion: HoldoutReport,
    challenger: HoldoutReport,
    primary: str = "escalation.pr_auc",
    tolerance: float = 0.02,
) -> GateDecision:
    """Promote only if `primary` improves and no gated metric is worse beyond `tolerance`."""
    if primary not in challenger.metrics or primary not in champion.metrics:
        raise ValueError(
            f"primary metric {primary!r} is not reported for both models; choose one of "
            f"{sorted(set(champion.metrics) & set(challenger.metrics))}"
        )
    reasons, deltas = [], {}
    for name in GATED:
        if name not in champion.metrics or name not in challenger.metrics:
            continue
        delta = challenger.metrics[name] - champion.metrics[name]
        deltas[name] = delta
        worse = delta > tolerance if name in LOWER_IS_BETTER else delta < -tolerance
        if worse:
            reasons.append(
                f"{name} is worse by {abs(delta):.3f} (tolerance {tolerance:.3f})"
            )

    improvement = challenger.metrics[primary] - champion.metrics[primary]
    if primary in LOWER_IS_BETTER:
        improvement = -improvement
    if improvement <= 0:
        reasons.insert(
            0,
            f"{primary} did not improve ({champion.metrics[primary]:.3f} -> "
            f"{challenger.metrics[primary]:.3f})",
        )
    passed = not reasons
    logger.info("gate %s on %s", "passed" if passed else "refused", primary)
    return GateDecision(passed, primary, reasons, deltas)
