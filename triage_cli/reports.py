"""`triage report` and `triage digest`: the reports page and the lessons digest from the
command line, read straight from the cases database (TRIAGE_DATABASE_URL)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer()

SINCE_HELP = 'How far back: a span such as "7d", "2w" or "24h", or a start date.'
UNTIL_HELP = "Last day to include (YYYY-MM-DD); default: up to now."


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The `triage` app's error handling; looked up when the command runs, because
    `triage_cli.main` imports this module to register the commands."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from triage_cli.main import _user_errors as handled

        return handled(command)(*args, **kwargs)

    return wrapper


def _threshold(threshold: float | None) -> float | None:
    """The flag threshold to measure: given, TRIAGE_ESCALATION_THRESHOLD, or the bundle's."""
    from serving.settings import Settings
    from triage.bundle import load_bundle

    if threshold is not None:
        return threshold
    settings = Settings()
    if settings.escalation_threshold is not None:
        return settings.escalation_threshold
    return load_bundle(settings.model_dir).manifest.threshold


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

    from serving.reports import build_report, display, to_csv
    from triage.periods import resolve
    from triage_cli.main import _configure_logging, _database, console

    _configure_logging("WARNING")
    period = resolve(since, until, datetime.now(UTC))
    flag_threshold = _threshold(threshold)
    database = _database()
    try:
        with database.session() as session:
            result = build_report(session, period, flag_threshold)
    finally:
        database.dispose()
    out = Console()
    out.print(f"Report for {period.label()} (UTC)", highlight=False)
    for table in result.tables.values():
        shown = RichTable(*(c.heading for c in table.columns), title=table.title)
        for row in table.rows:
            cells = (
                display(v, c.kind) for v, c in zip(row, table.columns, strict=True)
            )
            shown.add_row(*cells)
        out.print(shown)
    if csv is not None:
        csv.mkdir(parents=True, exist_ok=True)
        for name, table in result.tables.items():
            (csv / f"{name}.csv").write_bytes(to_csv(table).encode("utf-8"))
        console.print(f"Wrote {len(result.tables)} CSV files to {csv}", highlight=False)


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
    from serving.digest import (
        build_digest,
        digest_filenames,
        render_markdown,
        standalone_style,
    )
    from serving.review import templates
    from triage.periods import resolve
    from triage_cli.main import _configure_logging, _database, console

    _configure_logging("WARNING")
    period = resolve(since, until, datetime.now(UTC))
    database = _database()
    try:
        with database.session() as session:
            result = build_digest(session, period)
    finally:
        database.dispose()
    markdown_name, html_name = digest_filenames(result)
    page = templates.get_template("digest.html").render(
        digest=result, style=standalone_style()
    )
    output.mkdir(parents=True, exist_ok=True)
    (output / markdown_name).write_text(render_markdown(result), encoding="utf-8")
    (output / html_name).write_text(page, encoding="utf-8")
    console.print(
        f"Wrote {output / markdown_name} and {output / html_name} "
        f"({result.lesson_count} lessons, {period.label()})",
        highlight=False,
    )
