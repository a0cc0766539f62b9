"""How the challenger's shadow answers compare with the champion's, overall and on the
cases managers have since resolved."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.db.models import Case, ShadowPrediction
from triage.metrics import escalation_metrics


def compare_shadow(session: Session, challenger: str) -> dict:
    rows = session.scalars(
        select(ShadowPrediction).where(
            ShadowPrediction.challenger_version == challenger
        )
    ).all()
    if not rows:
        return {"challenger": challenger, "requests": 0}

    report: dict = {
        "challenger": challenger,
        "champions": sorted({r.champion_version for r in rows}),
        "requests": len(rows),
    }
    both = [
        r
        for r in rows
        if r.champion_escalation is not None and r.challenger_escalation is not None
    ]
    if both:
        gap = np.abs([r.champion_escalation - r.challenger_escalation for r in both])
        report["escalation_mean_abs_difference"] = float(gap.mean())
        report["escalation_max_abs_difference"] = float(gap.max())
    categorised = [r for r in rows if r.champion_category and r.challenger_category]
    if categorised:
        report["category_agreement"] = float(
            np.mean([r.champion_category == r.challenger_category for r in categorised])
        )
    report["resolved"] = _on_resolved(session, rows)
    return report


def _on_resolved(session: Session, rows: list[ShadowPrediction]) -> dict:
    """Both models' metrics on the shadowed requests whose case has an outcome now."""
    ids = {r.case_id for r in rows if r.case_id}
    cases = {
        c.id: c
        for c in session.scalars(select(Case).where(Case.id.in_(ids)))
        if c.outcomes
    }
    latest: dict[str, ShadowPrediction] = {}
    for row in rows:
        if row.case_id in cases:
            latest[row.case_id] = row
    if not latest:
        return {"cases": 0}

    truth = [cases[i].outcomes[-1] for i in latest]
    shadowed = list(latest.values())
    result: dict = {"cases": len(shadowed)}
    for side in ("champion", "challenger"):
        found = {}
        probabilities = [getattr(r, f"{side}_escalation") for r in shadowed]
        escalated = [int(o.escalated) for o in truth]
        if None not in probabilities and len(set(escalated)) == 2:
            metrics = escalation_metrics(escalated, probabilities)
            found |= {k: metrics[k] for k in ("roc_auc", "pr_auc", "ece")}
        labels = [getattr(r, f"{side}_category") for r in shadowed]
        found["category_accuracy"] = float(
            np.mean([p == o.category for p, o in zip(labels, truth, strict=True)])
        )
        result[side] = found
    return result
