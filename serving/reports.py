"""Reports over a period, computed in SQL from cases and their current outcomes.

Volume counts the cases created (first scored) in the period, by failure category: the true
category where an outcome gives one, the predicted one otherwise. Every table about outcomes
counts the cases resolved in the period, read through their current outcome (the highest
revision): "actual" escalation and the true category come from it, "predicted" from the case's
latest prediction. Each table is plain columns and rows, so the page, the CSV download and the
command line show the same figures.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Select, and_, case, func, literal, select
from sqlalchemy.orm import Session

from serving.db.models import Case, Outcome
from triage.periods import Period, bucket_start, buckets, granularity

ALL = "All categories"
UNCATEGORISED = "uncategorised"
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """A table column: its key (the CSV header), its heading and how to show its values.

    `kind` is one of text, count, rate (a fraction), hours, day, yes/no.
    """

    key: str
    heading: str
    kind: str = "text"


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple]

    def records(self) -> list[dict]:
        return [dict(zip(self.keys, row, strict=True)) for row in self.rows]

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.columns]


@dataclass(frozen=True)
class Report:
    period: Period
    threshold: float | None
    unit: str
    created: int
    resolved: int
    volume: Table
    categories: Table
    escalation: Table
    flag: Table
    root_causes: Table
    resolution_time: Table
    lessons: Table

    @property
    def tables(self) -> dict[str, Table]:
        return {name: getattr(self, name) for name in TABLE_NAMES}


TABLE_NAMES = (
    "categories",
    "volume",
    "escalation",
    "flag",
    "root_causes",
    "resolution_time",
    "lessons",
)


def current_outcomes():
    """Each case's current outcome: the revision with the highest number."""
    latest = (
        select(Outcome.case_id, func.max(Outcome.revision).label("revision"))
        .group_by(Outcome.case_id)
        .subquery("latest")
    )
    return (
        select(Outcome)
        .join(
            latest,
            and_(
                Outcome.case_id == latest.c.case_id,
                Outcome.revision == latest.c.revision,
            ),
        )
        .subquery("current_outcome")
    )


def _created_in(period: Period):
    return and_(Case.created_at >= period.since, Case.created_at < period.until)


def _resolved_in(period: Period):
    return and_(Case.resolved_at >= period.since, Case.resolved_at < period.until)


def _resolved(current, *columns) -> Select:
    return select(*columns).join(current, current.c.case_id == Case.id)


def _count(flag) -> object:
    return func.coalesce(func.sum(case((flag, 1), else_=0)), 0)


def build_report(session: Session, period: Period, threshold: float | None) -> Report:
    """Every table of the reports page for `period`; `threshold` is the serving one."""
    current = current_outcomes()
    unit = granularity(period)
    volume, categories, created = _volume(session, current, period, unit)
    resolved = (
        session.scalar(select(func.count(Case.id)).where(_resolved_in(period))) or 0
    )
    return Report(
        period=period,
        threshold=threshold,
        unit=unit,
        created=created,
        resolved=resolved,
        volume=volume,
        categories=categories,
        escalation=_escalation(session, current, period),
        flag=_flag(session, current, period, threshold),
        root_causes=_root_causes(session, current, period),
        resolution_time=_resolution_time(session, current, period),
        lessons=_lessons(session, current, period),
    )


def _category_counts(session: Session, current, period: Period) -> Counter:
    category = func.coalesce(current.c.category, Case.category, literal(UNCATEGORISED))
    rows = session.execute(
        select(category, func.count(Case.id))
        .outerjoin(current, current.c.case_id == Case.id)
        .where(_created_in(period))
        .group_by(category)
    )
    return Counter(dict(rows.all()))


def _volume(
    session: Session, current, period: Period, unit: str
) -> tuple[Table, Table, int]:
    category = func.coalesce(current.c.category, Case.category, literal(UNCATEGORISED))
    rows = session.execute(
        select(Case.created_at, category)
        .outerjoin(current, current.c.case_id == Case.id)
        .where(_created_in(period))
    ).all()
    counts = Counter((bucket_start(created, unit), label) for created, label in rows)
    totals = _category_counts(session, current, period)
    previous = _category_counts(session, current, period.previous())
    order = ranked(totals)
    volume = Table(
        "volume",
        f"Cases per {unit} and category",
        (
            Column(unit, unit.capitalize(), "day"),
            Column("category", "Category"),
            Column("cases", "Cases", "count"),
        ),
        [
            (day, label, counts[(day, label)])
            for day in buckets(period, unit)
            for label in order
            if counts[(day, label)]
        ],
    )
    created = sum(totals.values())
    by_category = Table(
        "categories",
        "Complaint volume by failure category",
        (
            Column("category", "Category"),
            Column("cases", "Cases", "count"),
            Column("share", "Share", "rate"),
            Column("previous_period", "Previous period", "count"),
        ),
        [
            (label, totals[label], totals[label] / created, previous.get(label, 0))
            for label in order
        ],
    )
    return volume, by_category, created


def ranked(counts: Counter) -> list[str]:
    """Labels by count, largest first, ties by name (a stable order for charts and CSV)."""
    return sorted(counts, key=lambda label: (-counts[label], label))


def _escalation(session: Session, current, period: Period) -> Table:
    figures = (
        func.count(Case.id),
        func.avg(Case.escalation_probability),
        _count(current.c.escalated.is_(True)),
    )
    rows = session.execute(
        _resolved(current, current.c.category, *figures)
        .where(_resolved_in(period))
        .group_by(current.c.category)
    ).all()
    overall = session.execute(
        _resolved(current, *figures).where(_resolved_in(period))
    ).one()
    body = sorted(rows, key=lambda row: (-row[1], row[0]))
    table_rows = [_escalation_row(*row) for row in body]
    if overall[0]:
        table_rows.append(_escalation_row(ALL, *overall))
    return Table(
        "escalation",
        "Escalation rate, predicted against actual",
        (
            Column("category", "True category"),
            Column("resolved", "Resolved cases", "count"),
            Column("predicted_rate", "Predicted (mean probability)", "rate"),
            Column("actual_rate", "Actually escalated", "rate"),
        ),
        table_rows,
    )


def _escalation_row(label, resolved, mean_probability, escalated) -> tuple:
    predicted = float(mean_probability) if mean_probability is not None else None
    return (label, resolved, predicted, escalated / resolved)


def _flag(session: Session, current, period: Period, threshold: float | None) -> Table:
    columns = (
        Column("threshold", "Threshold", "rate"),
        Column("resolved", "Resolved cases scored", "count"),
        Column("flagged", "Flagged", "count"),
        Column("escalated", "Really escalated", "count"),
        Column("flagged_escalated", "Flagged and escalated", "count"),
        Column("flagged_not_escalated", "Flagged, not escalated", "count"),
        Column("missed", "Escalated, not flagged", "count"),
        Column("precision", "Precision", "rate"),
        Column("recall", "Recall", "rate"),
    )
    title = "How the flag performed at the current threshold"
    if threshold is None:
        return Table("flag", title, columns, [])
    flagged = Case.escalation_probability >= threshold
    escalated = current.c.escalated.is_(True)
    resolved, n_flagged, n_escalated, hits = session.execute(
        _resolved(
            current,
            func.count(Case.id),
            _count(flagged),
            _count(escalated),
            _count(and_(flagged, escalated)),
        ).where(_resolved_in(period), Case.escalation_probability.is_not(None))
    ).one()
    precision = hits / n_flagged if n_flagged else None
    recall = hits / n_escalated if n_escalated else None
    row = (threshold, resolved, n_flagged, n_escalated, hits)
    row += (n_flagged - hits, n_escalated - hits, precision, recall)
    return Table("flag", title, columns, [row])


def _root_causes(session: Session, current, period: Period) -> Table:
    cases = func.count(Case.id)
    rows = session.execute(
        _resolved(
            current,
            current.c.root_cause,
            cases,
            _count(current.c.escalated.is_(True)),
        )
        .where(_resolved_in(period), current.c.root_cause != "")
        .group_by(current.c.root_cause)
        .order_by(cases.desc(), current.c.root_cause)
    ).all()
    return Table(
        "root_causes",
        "Top root causes",
        (
            Column("root_cause", "Root cause"),
            Column("cases", "Cases", "count"),
            Column("escalated", "Escalated", "count"),
        ),
        [tuple(row) for row in rows],
    )


def _resolution_time(session: Session, current, period: Period) -> Table:
    rows = session.execute(
        _resolved(current, current.c.category, Case.created_at, Case.resolved_at).where(
            _resolved_in(period)
        )
    ).all()
    hours: dict[str, list[float]] = defaultdict(list)
    for label, created, resolved in rows:
        hours[label].append((resolved - created).total_seconds() / 3600)
    every = [h for values in hours.values() for h in values]
    order = sorted(hours, key=lambda label: (-len(hours[label]), label))
    table_rows = [_hours_row(label, hours[label]) for label in order]
    if every:
        table_rows.append(_hours_row(ALL, every))
    return Table(
        "resolution_time",
        "Time from scoring to resolution",
        (
            Column("category", "True category"),
            Column("resolved", "Resolved cases", "count"),
            Column("median_hours", "Median", "hours"),
            Column("mean_hours", "Mean", "hours"),
            Column("p90_hours", "90th percentile", "hours"),
        ),
        table_rows,
    )


def _hours_row(label: str, values: Sequence[float]) -> tuple:
    data = np.asarray(values, dtype=np.float64)
    median, p90 = np.percentile(data, [50, 90])
    return (label, len(values), float(median), float(data.mean()), float(p90))


def _lessons(session: Session, current, period: Period) -> Table:
    rows = session.execute(
        _resolved(
            current,
            current.c.category,
            Case.id,
            current.c.escalated,
            current.c.lesson,
            Case.resolved_at,
        )
        .where(_resolved_in(period), current.c.lesson != "")
        .order_by(current.c.category, Case.resolved_at, Case.id)
    ).all()
    return Table(
        "lessons",
        "Lessons learned, by category",
        (
            Column("category", "True category"),
            Column("case_id", "Case"),
            Column("escalated", "Escalated", "yes/no"),
            Column("lesson", "Lesson"),
            Column("resolved_at", "Resolved", "instant"),
        ),
        [tuple(row) for row in rows],
    )


def grouped(table: Table, key: str = "category") -> dict[str, list[dict]]:
    """A table's records grouped by one column, groups in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for record in table.records():
        groups.setdefault(record[key], []).append(record)
    return groups


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text that starts like a formula gets a leading
    apostrophe (lessons and root causes are free text)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_value(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if value is None:
        return ""
    return spreadsheet_safe(str(value) if not isinstance(value, int) else value)


def to_csv(table: Table) -> str:
    """The table as CSV: a header of column keys, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.keys)
    writer.writerows(_csv_rows(table.rows))
    return out.getvalue()


def _csv_rows(rows: Iterable[tuple]) -> Iterable[list]:
    for row in rows:
        yield [csv_value(value) for value in row]


def write_csv_files(report: Report, folder: Path) -> list[Path]:
    """Every table of `report` as `<table>.csv` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in report.tables.items():
        path = folder / f"{name}.csv"
        path.write_bytes(to_csv(table).encode("utf-8"))
        written.append(path)
    return written


def display(value: object, kind: str) -> str:
    """A value as the page and the command line show it."""
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "hours":
        return f"{value:.1f} h"
    if kind == "yes/no":
        return "yes" if value else "no"
    if kind == "instant":
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "day":
        return value.isoformat()
    return str(value)
