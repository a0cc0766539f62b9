"""The learning loop across the rooms: resolved cases (serving's database) -> a challenger
(training) -> the gate (triage) -> the registry (serving).

This is the one place that needs both the database and torch, so it lives with the CLI.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from serving.cases import cases_since, resolved_cases
from serving.db.engine import Database
from serving.registry import champion, ensure_champion, promote, register
from serving.settings import REPO_ROOT, Settings
from triage.bundle import load_bundle
from triage.retraining import gate, holdout_report, new_labels, split_holdout
from triage.scorer import Scorer

logger = logging.getLogger(__name__)


@dataclass
class RetrainOptions:
    spec: Path
    by: str
    case_weight: float = 1.0
    min_category_examples: int = 20
    holdout: float = 0.2
    min_holdout: int = 20
    primary: str = "escalation.pr_auc"
    tolerance: float = 0.02
    promote: bool = True
    from_champion: bool = True
    base_model: str | None = None
    epochs: int = 3
    batch_size: int = 16
    max_train_rows: int | None = None
    threads: int | None = None


def retrain(settings: Settings, options: RetrainOptions) -> dict:
    """Train a challenger on resolved cases, compare it with the champion on the most recent
    ones, register it, and promote it if the gate passes. Returns the comparison report,
    which is also written beside the challenger's run."""
    from training.retrain import (
        checkpoint_of,
        suspicious_labels,
        train_challenger,
        write_training_spec,
    )

    database = Database(settings.resolved_database_url)
    database.upgrade()
    with database.session() as session, session.begin():
        current = ensure_champion(session, settings.model_dir)
        champion_version, champion_path = current.version, current.path
        champion_checkpoint = current.checkpoint
        cases = resolved_cases(session)

    train_cases, holdout = split_holdout(cases, options.holdout, options.min_holdout)
    known = load_bundle(champion_path).manifest.categories
    accepted, unknown = new_labels(train_cases, known, options.min_category_examples)
    suspects = suspicious_labels(train_cases)
    logger.info(
        "retraining on %d resolved cases (%d held out), new labels %s",
        len(train_cases),
        len(holdout),
        accepted,
    )

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    registry = settings.resolved_registry_dir
    run = registry / "runs" / stamp
    spec = write_training_spec(
        options.spec,
        train_cases,
        run / "data",
        [*known, *accepted],
        options.case_weight,
    )
    init_from = None
    if (
        options.from_champion
        and champion_checkpoint
        and Path(champion_checkpoint).is_file()
    ):
        init_from = champion_checkpoint
    incoming = registry / f"incoming-{stamp}"
    train_challenger(
        spec,
        run / "train",
        incoming,
        base_model=options.base_model,
        init_from=init_from,
        epochs=options.epochs,
        batch_size=options.batch_size,
        max_train_rows=options.max_train_rows,
        threads=options.threads,
    )
    bundle = load_bundle(incoming)
    final = registry / bundle.version
    incoming.rename(final)

    shared = [label for label in known if label in set(bundle.manifest.categories)]
    old = holdout_report(Scorer(champion_path), holdout, shared)
    new = holdout_report(Scorer(final), holdout, shared)
    decision = gate(old, new, options.primary, options.tolerance)
    report = {
        "champion": asdict(old),
        "challenger": asdict(new),
        "gate": asdict(decision),
        "held_out_cases": len(holdout),
        "training_cases": len(train_cases),
        "new_labels": accepted,
        "unknown_categories": unknown,
        "started_from": init_from or "base weights",
        "suspicious_labels": {"count": len(suspects), "cases": suspects},
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()
        },
    }

    with database.session() as session, session.begin():
        register(
            session,
            final,
            by=options.by,
            metrics={"held_out": new.metrics, "gate": asdict(decision)},
            training_data={
                "base_spec": str(options.spec),
                "resolved_cases": len(train_cases),
                "case_weight": options.case_weight,
                "new_labels": accepted,
            },
            checkpoint=str(checkpoint_of(run / "train")),
        )
        report["promoted"] = False
        if decision.passed and options.promote:
            if champion(session).version != champion_version:
                raise RuntimeError(
                    "the champion changed while retraining; compare again before promoting"
                )
            promote(session, bundle.version, by=options.by)
            report["promoted"] = True
    report["challenger_version"] = bundle.version
    (run / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    report["report_path"] = str(run / "report.json")
    database.dispose()
    return report


def drift(settings: Settings, days: int, sample: int) -> dict:
    """Compare the last `days` of cases with the champion's training data."""
    from training.drift import Recent, drift_report, training_side

    database = Database(settings.resolved_database_url)
    database.upgrade()
    since = datetime.now(UTC) - timedelta(days=days)
    with database.session() as session, session.begin():
        current = ensure_champion(session, settings.model_dir)
        path = current.path
        cases = cases_since(session, since)
        resolved = [c for c in cases if c.outcomes]
        recent = Recent(
            texts=[c.text for c in cases],
            metadata=[c.complaint_metadata for c in cases],
            predicted_categories=[c.category for c in cases],
            escalation_probabilities=[c.escalation_probability for c in cases],
            escalated=[c.outcomes[-1].escalated for c in resolved],
            true_categories=[c.outcomes[-1].category for c in resolved],
        )
    database.dispose()

    scorer = Scorer(path)
    spec = scorer.bundle.manifest.training.get("spec")
    if spec and not Path(spec).is_file() and (REPO_ROOT / spec).is_file():
        spec = str(
            REPO_ROOT / spec
        )  # recorded relative to the checkout it was trained in
    if not spec or not Path(spec).is_file():
        raise ValueError(
            f"the champion's training spec ({spec or 'not recorded'}) is not on this "
            "machine; drift compares with the training data, so run it where that data is"
        )
    report = drift_report(scorer, training_side(Path(spec), sample), recent)
    report["since"] = since.isoformat()
    return report
