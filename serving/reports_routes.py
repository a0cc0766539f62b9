"""Routes for sharing the lessons: the reports page, its CSV downloads, the digest, and the
similar resolved cases of a case (for the API; the review page shows them with the case).

The pages are for managers and use the review page's sign-in, CSRF and rendering.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from serving.cases_api import CaseId, case_not_found
from serving.charts import Chart, horizontal_bars, stacked_columns
from serving.deps import DatabaseDep, Manager
from serving.digest import Digest, build_digest, digest_filenames, render_markdown
from serving.reports import (
    ALL,
    TABLE_NAMES,
    Report,
    build_report,
    display,
    grouped,
    to_csv,
)
from serving.review import render, signed_in
from serving.schemas import SimilarCaseOut, SimilarCasesOut
from serving.similar import similar_cases_of
from triage.errors import PeriodError
from triage.periods import Period, buckets, days, last_days, parse_day

router = APIRouter()
REPORT_DAYS = 30
DIGEST_DAYS = 7
CHART_CATEGORIES = 7
TOP_ROOT_CAUSES = 10


def page_period(
    since: str | None, until: str | None, default_days: int
) -> tuple[Period, list[str]]:
    """The period a page's from/to dates name (both days included), and what was wrong
    with them; without dates, the last `default_days` days."""
    today = datetime.now(UTC).date()
    fallback = last_days(today, default_days)
    errors = []
    try:
        first = parse_day(since, "From") if since else fallback.first_day
        last = parse_day(until, "To") if until else max(first, fallback.last_day)
        return days(first, last), errors
    except PeriodError as error:
        errors.append(f"{error}; showing the last {default_days} days instead.")
        return fallback, errors


def period_query(period: Period) -> str:
    return urlencode(
        {"since": period.first_day.isoformat(), "until": period.last_day.isoformat()}
    )


def serving_threshold(request: Request) -> float | None:
    scorer = request.app.state.scorer
    return float(scorer.threshold) if scorer is not None else None


def report_for(request: Request, period: Period) -> Report:
    with request.app.state.database.session() as session:
        return build_report(session, period, serving_threshold(request))


def digest_for(
    request: Request, since: str | None, until: str | None
) -> tuple[Digest, list[str]]:
    """The digest of the period the page's dates name (the last week without them)."""
    period, errors = page_period(since, until, DIGEST_DAYS)
    with request.app.state.database.session() as session:
        return build_digest(session, period), errors


def charts(report: Report) -> dict[str, Chart]:
    """The pictures a manager would rather look at than read."""
    return {
        "volume": _volume_chart(report),
        "escalation": horizontal_bars(
            "Escalation rate by true category",
            [(row[0], [row[2], row[3]]) for row in report.escalation.rows],
            ["predicted", "actual"],
            lambda v: display(v, "rate"),
            ceiling=1.0,
        ),
        "root_causes": horizontal_bars(
            "Top root causes",
            [(row[0], [row[1]]) for row in report.root_causes.rows[:TOP_ROOT_CAUSES]],
            ["cases"],
            str,
        ),
        "resolution_time": horizontal_bars(
            "Median time to resolution by true category",
            [
                (row[0], [row[2]])
                for row in report.resolution_time.rows
                if row[0] != ALL
            ],
            ["median"],
            lambda v: display(v, "hours"),
        ),
    }


def _volume_chart(report: Report) -> Chart:
    """Stacked columns of the biggest categories; the rest share one grey segment."""
    order = [row[0] for row in report.categories.rows]
    shown, rest = order[:CHART_CATEGORIES], set(order[CHART_CATEGORIES:])
    axis = list(buckets(report.period, report.unit))
    position = {day: i for i, day in enumerate(axis)}
    series = {label: [0] * len(axis) for label in shown}
    if rest:
        series["other categories"] = [0] * len(axis)
    for day, label, cases in report.volume.rows:
        key = "other categories" if label in rest else label
        series[key][position[day]] += cases
    title = f"Complaint volume per {report.unit} by failure category"
    return stacked_columns(title, axis, series, report.unit)


@router.get("/reports", include_in_schema=False)
def reports_page(
    request: Request, since: str | None = None, until: str | None = None
) -> HTMLResponse:
    """Volume, escalation, the flag, root causes, time to resolution and lessons."""
    principal = signed_in(request)
    period, errors = page_period(since, until, REPORT_DAYS)
    report = report_for(request, period)
    context = {
        "principal": principal,
        "report": report,
        "charts": charts(report),
        "show": display,
        "lessons": grouped(report.lessons),
        "top_root_causes": TOP_ROOT_CAUSES,
        "query": period_query(period),
        "errors": errors,
    }
    return render(request, "reports.html", context)


@router.get("/reports/digest", include_in_schema=False)
def digest_page(
    request: Request, since: str | None = None, until: str | None = None
) -> HTMLResponse:
    """The lessons digest of a period, printable."""
    principal = signed_in(request)
    digest, errors = digest_for(request, since, until)
    context = {
        "principal": principal,
        "digest": digest,
        "query": period_query(digest.period),
        "errors": errors,
    }
    return render(request, "digest_page.html", context)


@router.get("/reports/digest.md", include_in_schema=False)
def digest_markdown(
    request: Request, since: str | None = None, until: str | None = None
) -> Response:
    signed_in(request)
    digest, _ = digest_for(request, since, until)
    markdown_name, _ = digest_filenames(digest)
    return Response(
        render_markdown(digest),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{markdown_name}"'},
    )


@router.get("/reports/{table}.csv", include_in_schema=False)
def report_csv(
    request: Request, table: str, since: str | None = None, until: str | None = None
) -> Response:
    """One table of the reports page as CSV, for the same period."""
    signed_in(request)
    if table not in TABLE_NAMES:
        raise HTTPException(
            404, f"no report table {table!r}; the tables are {', '.join(TABLE_NAMES)}"
        )
    period, errors = page_period(since, until, REPORT_DAYS)
    if errors:
        raise HTTPException(422, " ".join(errors))
    report = report_for(request, period)
    name = f"{table}-{period.first_day}-to-{period.last_day}.csv"
    return Response(
        to_csv(report.tables[table]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/v1/cases/{case_id}/similar", response_model=SimilarCasesOut, tags=["cases"]
)
def similar(
    case_id: CaseId,
    request: Request,
    database: DatabaseDep,
    _: Manager,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> SimilarCasesOut:
    """The resolved cases most like this one, with their resolution and lesson.

    Similarity is the cosine of the serving model's text embeddings. After a new model
    version, calls embed the resolved cases it has not seen, within TRIAGE_SIMILAR_SECONDS
    each; `pending` says how many are left.
    """
    scorer = request.app.state.scorer
    if scorer is None:
        raise HTTPException(503, "the model is not loaded yet; retry shortly")
    seconds = request.app.state.settings.similar_seconds
    found = similar_cases_of(request.app.state).similar(
        database, scorer, case_id, limit, seconds
    )
    if found is None:
        raise case_not_found(case_id)
    return SimilarCasesOut(
        case_id=case_id,
        model_version=scorer.version,
        searched=found.searched,
        pending=found.pending,
        items=[SimilarCaseOut(**asdict(item)) for item in found.items],
    )
