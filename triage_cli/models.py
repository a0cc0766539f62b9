"""`triage models ...` and `triage retrain`: the registry and the learning loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from triage_cli.common import _configure_logging, _database, _user_errors, console

app = typer.Typer(
    help="The model registry: list, show, promote, roll back, compare.",
    no_args_is_help=True,
)

By = Annotated[
    str | None,
    typer.Option("--by", help="Who is acting; default: the operating-system user."),
]


def _by(name: str | None) -> str:
    from serving.registry import operator

    return (name or operator()).strip() or operator()


def _settings():
    from serving.settings import Settings

    return Settings()


@app.command("list")
@_user_errors
def list_models() -> None:
    """List registered versions with their status.

    Example: triage models list
    """
    from serving.registry import ensure_champion, versions

    _configure_logging("WARNING")
    database = _database()
    with database.session() as session, session.begin():
        ensure_champion(session, _settings().model_dir)
        rows = versions(session)
        table = Table("status", "registered", "by", "promoted", "promoted by")
        table.add_column("version", overflow="fold")  # whole, so it can be copied
        for row in rows:
            table.add_row(
                row.status,
                row.registered_at.strftime("%Y-%m-%d %H:%M"),
                row.trained_by,
                row.promoted_at.strftime("%Y-%m-%d %H:%M") if row.promoted_at else "",
                row.promoted_by or "",
                row.version,
            )
    Console().print(table)


@app.command("show")
@_user_errors
def show(version: str) -> None:
    """Print one version's record as JSON, with the history of champions.

    Example: triage models show cfpb-minilm-20261203-25c7cd8715
    """
    from serving.db.models import ModelVersion
    from serving.registry import terms

    _configure_logging("WARNING")
    with _database().session() as session:
        row = session.get(ModelVersion, version)
        if row is None:
            raise ValueError(
                f"no model version {version!r}; `triage models list` shows them"
            )
        record = {
            "version": row.version,
            "status": row.status,
            "path": row.path,
            "trained_by": row.trained_by,
            "registered_at": row.registered_at.isoformat(),
            "promoted_by": row.promoted_by,
            "promoted_at": row.promoted_at.isoformat() if row.promoted_at else None,
            "checkpoint": row.checkpoint,
            "metrics": row.metrics,
            "training_data": row.training_data,
            "champion_terms": [
                {
                    "started_at": t.started_at.isoformat(),
                    "ended_at": t.ended_at.isoformat() if t.ended_at else None,
                    "by": t.started_by,
                    "reason": t.reason,
                }
                for t in terms(session)
                if t.version == version
            ],
        }
    typer.echo(json.dumps(record, indent=2, default=str))


@app.command("register")
@_user_errors
def register_bundle(bundle: Path, by: By = None) -> None:
    """Copy a bundle into the registry as a challenger (promote it separately).

    Example: triage models register runs/export/cfpb-minilm-20261210-ab12cd34ef
    """
    from serving.registry import ensure_champion, register

    _configure_logging("WARNING")
    settings = _settings()
    with _database().session() as session, session.begin():
        ensure_champion(session, settings.model_dir)
        row = register(
            session, bundle, by=_by(by), registry_dir=settings.resolved_registry_dir
        )
        version = row.version
    console.print(f"Registered {version} as a challenger.", highlight=False)


@app.command("promote")
@_user_errors
def promote_version(version: str, by: By = None) -> None:
    """Make a version the champion; running servers swap to it within seconds.

    Example: triage models promote cfpb-cases-minilm-20261210-ab12cd34ef --by "Dana Reyes"
    """
    from serving.registry import ensure_champion, promote

    _configure_logging("WARNING")
    with _database().session() as session, session.begin():
        ensure_champion(session, _settings().model_dir)
        promote(session, version, by=_by(by))
    console.print(f"{version} is the champion.", highlight=False)


@app.command("rollback")
@_user_errors
def rollback_champion(by: By = None) -> None:
    """Return to the previous champion.

    Example: triage models rollback --by "Dana Reyes"
    """
    from serving.registry import ensure_champion, rollback

    _configure_logging("WARNING")
    with _database().session() as session, session.begin():
        ensure_champion(session, _settings().model_dir)
        version = rollback(session, by=_by(by)).version
    console.print(f"Rolled back: {version} is the champion again.", highlight=False)


@app.command("compare")
@_user_errors
def compare(
    challenger: Annotated[
        str | None, typer.Option(help="Default: the newest challenger.")
    ] = None,
) -> None:
    """Agreement of the shadow-scoring challenger with the champion, and both models' metrics
    on the shadowed cases that have since been resolved (TRIAGE_SHADOW=true collects them).

    Example: triage models compare
    """
    from sqlalchemy import select

    from serving.db.models import CHALLENGER, ModelVersion
    from serving.shadow import compare_shadow

    _configure_logging("WARNING")
    with _database().session() as session:
        if challenger is None:
            challenger = session.scalar(
                select(ModelVersion.version)
                .where(ModelVersion.status == CHALLENGER)
                .order_by(ModelVersion.registered_at.desc())
                .limit(1)
            )
            if challenger is None:
                raise ValueError("there is no challenger; `triage retrain` makes one")
        report = compare_shadow(session, challenger)
    typer.echo(json.dumps(report, indent=2))


@_user_errors
def retrain(
    spec: Annotated[Path, typer.Option(help="The base dataset spec.")] = Path(
        "data/specs/cfpb.toml"
    ),
    case_weight: Annotated[
        float,
        typer.Option(min=0.01, help="How many base rows one resolved case counts as."),
    ] = 1.0,
    min_category_examples: Annotated[
        int, typer.Option(min=1, help="Cases a new category needs to become a label.")
    ] = 20,
    holdout: Annotated[
        float, typer.Option(help="Share of the most recent resolved cases held out.")
    ] = 0.2,
    min_holdout: Annotated[int, typer.Option(min=2)] = 20,
    primary: Annotated[
        str, typer.Option(help="The metric a challenger must improve.")
    ] = "escalation.pr_auc",
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="How much worse any other metric may get.")
    ] = 0.02,
    promote: Annotated[
        bool,
        typer.Option(help="Promote when the gate passes (--no-promote: only report)."),
    ] = True,
    from_champion: Annotated[
        bool,
        typer.Option(
            help="Start from the champion's checkpoint when the registry has it."
        ),
    ] = True,
    base_model: Annotated[
        str | None, typer.Option(help="Base weights directory (default: MiniLM).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    max_train_rows: Annotated[int | None, typer.Option(min=2)] = None,
    threads: Annotated[int | None, typer.Option(min=1)] = None,
    by: By = None,
) -> None:
    """Retrain from resolved cases; promote the challenger only if it beats the champion
    on the most recent resolved cases.

    Example: triage retrain --case-weight 3 --by "Dana Reyes"
    """
    from triage_cli.loop import RetrainOptions
    from triage_cli.loop import retrain as run_retrain

    _configure_logging()
    options = RetrainOptions(
        spec=spec,
        by=_by(by),
        case_weight=case_weight,
        min_category_examples=min_category_examples,
        holdout=holdout,
        min_holdout=min_holdout,
        primary=primary,
        tolerance=tolerance,
        promote=promote,
        from_champion=from_champion,
        base_model=base_model,
        epochs=epochs,
        batch_size=batch_size,
        max_train_rows=max_train_rows,
        threads=threads,
    )
    report = run_retrain(_settings(), options)
    _print_comparison(report)
    typer.echo(
        json.dumps(
            {k: report[k] for k in ("challenger_version", "promoted", "report_path")}
        )
    )


def _print_comparison(report: dict) -> None:
    champion, challenger = report["champion"], report["challenger"]
    table = Table(
        "metric (held-out recent cases)", champion["version"], challenger["version"]
    )
    for name in sorted(set(champion["metrics"]) | set(challenger["metrics"])):
        cells = [
            f"{side['metrics'][name]:.3f}" if name in side["metrics"] else "-"
            for side in (champion, challenger)
        ]
        table.add_row(name, *cells)
    console.print(table)
    for label in report["new_labels"]:
        f1 = challenger["per_label_f1"].get(label)
        console.print(
            f"new label {label!r}: F1 {f1:.3f} on the held-out cases"
            if f1 is not None
            else f"new label {label!r}: not in the held-out cases",
            highlight=False,
        )
    suspects = report["suspicious_labels"]
    console.print(
        f"{suspects['count']} resolved cases have outcomes that look wrong; recheck them: "
        + ", ".join(s["case_id"] for s in suspects["cases"][:20]),
        highlight=False,
    )
    gate = report["gate"]
    verdict = (
        "passed: promoted"
        if report["promoted"]
        else ("passed" if gate["passed"] else "refused")
    )
    console.print(f"Gate {verdict}. " + "; ".join(gate["reasons"]), highlight=False)


@_user_errors
def drift(
    days: Annotated[
        int, typer.Option(min=1, help="How many recent days of cases.")
    ] = 30,
    sample: Annotated[
        int, typer.Option(min=10, help="Training complaints to compare with.")
    ] = 500,
    output: Annotated[
        Path | None, typer.Option(help="Also write the JSON here.")
    ] = None,
) -> None:
    """Compare recent complaints, predictions and outcomes with the champion's training data.

    Example: triage drift --days 30 --output drift.json
    """
    from triage_cli.loop import drift as run_drift

    _configure_logging("WARNING")
    report = run_drift(_settings(), days, sample)
    text = json.dumps(report, indent=2)
    if output is not None:
        output.write_text(text + "\n")
    typer.echo(text)
    alerts = report["alerts"]
    console.print(
        "Drift to look at: " + ", ".join(alerts) if alerts else "No drift alert.",
        highlight=False,
    )
