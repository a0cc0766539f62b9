"""`triage report` and `triage digest`: the reports page and the lessons digest from the
command line, read straight from the cases database (TRIAGE_DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from triage_cli.common import _configure_logging, _database, _user_errors, console

app = typer.Typer()

SINCE_HELP = 'How far back: a span such as "7d", "2w" or "24h", or a start date.'
UNTIL_HELP = "Last day to include (YYYY-MM-DD); default: up to now."


def _threshold(threshold: float | None) -> float | None:
    """The flag threshold to measure: given, TRIAGE_ESCALATION_THRESHOLD, or the bundle's."""
    from serving.settings import Settings
    from triage.bundle import load_bundle

    if threshold is not None:
        return threshold
    settings = Settings()
    if settings.escalation_threshold is not None:
        return settings.escalation_threshold
    return load_bundle(_champion_path(settings)).manifest.threshold


def _champion_path(settings) -> str:
    """The bundle serving now: the registry's champion (the configured one on first use)."""
    from serving.registry import ensure_champion

    database = _database()
    try:
        with database.session() as session, session.begin():
            return ensure_champion(session, settings.model_dir).path
    finally:
        database.dispose()


def _read(build: Callable[..., Any], *args: Any) -> Any:
    """Run `build(session, *args)` on the configured cases database, then close it."""
    _configure_logging("WARNING")
    database = _database()
    try:
        with database.session() as session:
            return build(session, *args)
    finally:
        database.dispose()


@app.command()
@_user_errors
def report(
    since: Annotated[str, typer.Option(help=SINCE_HELP)] = "30d",
    until: Annotated[str | None, typer.Option(help=UNTIL_HELP)] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Also write every table as CSV in this folder.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="Flag threshold; default: the serving one."),
    ] = None,
) -> None:
    """Print the reports page's tables for a period.

    Volume by category, escalation predicted against actual, the flag's precision and
    recall, root causes, time to resolution and the lessons.

    Example: triage report --since 30d --csv reports/
    """
    from rich.console import Console
    from rich.table import Table as RichTable

    from serving.reports import build_report, display, write_csv_files
    from triage.periods import resolve

    period = resolve(since, until, datetime.now(UTC))
    result = _read(build_report, period, _threshold(threshold))
    out = Console()
    out.print(f"Report for {period.label()} (UTC)", highlight=False)
    for table in result.tables.values():
        shown = RichTable(title=table.title)
        for column in table.columns:
            numeric = column.kind in ("count", "rate", "hours")
            shown.add_column(column.heading, justify="right" if numeric else "left")
        for row in table.rows:
            kinds = (c.kind for c in table.columns)
            shown.add_row(*(display(v, k) for v, k in zip(row, kinds, strict=True)))
        out.print(shown)
    if csv is not None:
        written = write_csv_files(result, csv)
        console.print(f"Wrote {len(written)} CSV files to {csv}", highlight=False)


@app.command()
@_user_errors
def digest(
    since: Annotated[str, typer.Option(help=SINCE_HELP)] = "7d",
    until: Annotated[str | None, typer.Option(help=UNTIL_HELP)] = None,
    output: Annotated[
        Path, typer.Option(help="Folder to write the Markdown and HTML files in.")
    ] = Path("."),
) -> None:
    """Write the lessons digest for the team, as Markdown and printable HTML.

    What failed most, what changed since the period before and the lessons recorded,
    with counts.

    Example: triage digest --since 7d --output digests/
    """
    from serving.digest import build_digest, write_digest
    from triage.periods import resolve

    period = resolve(since, until, datetime.now(UTC))
    result = _read(build_digest, period)
    markdown, page = write_digest(result, output)
    console.print(
        f"Wrote {markdown} and {page} ({result.lesson_count} lessons, {period.label()})",
        highlight=False,
    )
