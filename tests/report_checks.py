"""Shared by the report tests: seeding cases with chosen times and outcomes, the report's
figures computed again directly in SQL, and reading them back from the page and the CSV."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser

from sqlalchemy import bindparam, text

from serving.auth import Principal
from serving.cases import (
    CaseRecord,
    OutcomeDraft,
    get_case,
    record_cases,
    record_outcome,
)
from serving.db.models import UTCDateTime
from triage.scorer import Prediction


@dataclass(frozen=True)
class Seed:
    """A case to store: scored at `created`, resolved at `resolved` with `outcomes`
    (several means corrections; the last is current)."""

    case_id: str
    text: str
    metadata: dict | None
    prediction: Prediction
    created: datetime
    resolved: datetime | None = None
    outcomes: tuple[OutcomeDraft, ...] = ()


def seed(database, seeds: list[Seed], principal: Principal) -> None:
    """Store the cases and outcomes, then move their timestamps to the chosen ones."""
    with database.session() as session, session.begin():
        record_cases(
            session,
            [CaseRecord(s.case_id, s.text, s.metadata, s.prediction) for s in seeds],
            None,
            principal,
        )
        for s in seeds:
            case = get_case(session, s.case_id)
            for draft in s.outcomes:
                record_outcome(session, case, draft, principal)
            case.created_at = s.created
            for prediction in case.predictions:
                prediction.created_at = s.created
            if s.outcomes:
                case.resolved_at = s.resolved
                for outcome in case.outcomes:
                    outcome.created_at = s.resolved


CURRENT = """
    FROM cases c JOIN outcomes o ON o.case_id = c.id
     AND o.revision = (SELECT MAX(o2.revision) FROM outcomes o2 WHERE o2.case_id = c.id)
    WHERE c.resolved_at >= :since AND c.resolved_at < :until
"""


def _query(sql: str):
    return text(sql).bindparams(
        bindparam("since", type_=UTCDateTime), bindparam("until", type_=UTCDateTime)
    )


def _hours(backend: str) -> str:
    if backend == "sqlite":
        return "(julianday(c.resolved_at) - julianday(c.created_at)) * 24.0"
    return "EXTRACT(EPOCH FROM (c.resolved_at - c.created_at)) / 3600.0"


def _day(backend: str) -> str:
    if backend == "sqlite":
        return "date(c.created_at)"
    return "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def sql_figures(connection, backend: str, since, until, threshold: float) -> dict:
    """Every figure of the report for [since, until), written as plain SQL, independently
    of serving.reports."""
    params = {"since": since, "until": until}
    run = lambda sql, **extra: connection.execute(_query(sql), {**params, **extra})  # noqa: E731
    created = """
        FROM cases c LEFT JOIN outcomes o ON o.case_id = c.id
         AND o.revision = (SELECT MAX(o2.revision) FROM outcomes o2 WHERE o2.case_id = c.id)
        WHERE c.created_at >= :since AND c.created_at < :until
    """
    label = "COALESCE(o.category, c.category, 'uncategorised')"
    figures = {
        "categories": dict(
            run(f"SELECT {label}, COUNT(*) {created} GROUP BY {label}").all()
        ),
        "volume": {
            (str(day), category): n
            for day, category, n in run(
                f"SELECT {_day(backend)}, {label}, COUNT(*) {created} "
                f"GROUP BY {_day(backend)}, {label}"
            )
        },
    }
    escalated = "SUM(CASE WHEN o.escalated THEN 1 ELSE 0 END)"
    rows = run(
        f"SELECT o.category, COUNT(*), AVG(c.escalation_probability), {escalated} "
        f"{CURRENT} GROUP BY o.category"
    ).all()
    total = run(
        f"SELECT COUNT(*), AVG(c.escalation_probability), {escalated} {CURRENT}"
    ).one()
    figures["escalation"] = {
        category: (n, mean, hits / n) for category, n, mean, hits in rows
    }
    if total[0]:
        figures["escalation"]["All categories"] = (
            total[0],
            total[1],
            total[2] / total[0],
        )
    flagged = "c.escalation_probability >= :threshold"
    figures["flag"] = tuple(
        run(
            f"SELECT COUNT(*), SUM(CASE WHEN {flagged} THEN 1 ELSE 0 END), {escalated}, "
            f"SUM(CASE WHEN {flagged} AND o.escalated THEN 1 ELSE 0 END) {CURRENT} "
            "AND c.escalation_probability IS NOT NULL",
            threshold=threshold,
        ).one()
    )
    figures["root_causes"] = [
        tuple(row)
        for row in run(
            f"SELECT o.root_cause, COUNT(*), {escalated} {CURRENT} "
            "AND o.root_cause <> '' GROUP BY o.root_cause "
            "ORDER BY COUNT(*) DESC, o.root_cause"
        )
    ]
    figures["resolution_time"] = _resolution_times(run, backend)
    figures["lessons"] = {
        tuple(row)
        for row in run(
            f"SELECT o.category, c.id, o.lesson {CURRENT} AND o.lesson <> ''"
        )
    }
    return figures


def _resolution_times(run, backend: str) -> dict:
    """Per true category and over all: count, mean and median hours (median by the middle
    rows of the sorted durations), and on PostgreSQL the 90th percentile too."""
    figures = {}
    categories = [row[0] for row in run(f"SELECT DISTINCT o.category {CURRENT}")]
    for category in [*categories, None]:
        where = "AND o.category = :category" if category is not None else ""
        extra = {"category": category} if category is not None else {}
        durations = f"WITH d AS (SELECT {_hours(backend)} AS h {CURRENT} {where}) "
        median = (
            f"{durations} SELECT AVG(h) FROM (SELECT h FROM d ORDER BY h "
            "LIMIT 2 - (SELECT COUNT(*) FROM d) % 2 "
            "OFFSET ((SELECT COUNT(*) FROM d) - 1) / 2) AS middle"
        )
        n, mean = run(f"{durations} SELECT COUNT(*), AVG(h) FROM d", **extra).one()
        value = {
            "resolved": n,
            "mean_hours": mean,
            "median_hours": run(median, **extra).scalar(),
        }
        if backend == "postgresql":
            p90 = "SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY h) FROM d"
            value["p90_hours"] = run(durations + p90, **extra).scalar()
        if n:
            figures[category or "All categories"] = value
    return figures


def read_csv(body: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body)))


class _Tables(HTMLParser):
    """The report tables of a page, under the id of the section heading before them."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._section = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_table = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2" and "id" in attrs:
            self._section = attrs["id"]
        elif tag == "table" and "report-table" in (attrs.get("class") or ""):
            self._in_table = True
            self.tables.setdefault(self._section, [])
        elif self._in_table and tag == "tr":
            self._row = []
        elif self._row is not None and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._section].append(self._row)
            self._row = None
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_tables(html: str) -> dict[str, list[list[str]]]:
    """Rows (header first) of each report table, by section id."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables


KEYS = {
    "categories": ("category",),
    "volume": ("day", "category"),
    "escalation": ("category",),
    "flag": (),
    "root_causes": ("root_cause",),
    "resolution_time": ("category",),
    "lessons": ("category", "case_id"),
}
# How far a shown value may be from the exact one: CSV keeps 4 decimals, the page shows
# rates as percentages with one decimal and hours with one decimal.
TOLERANCE = {
    "raw": {"rate": 1e-9, "hours": 1e-6},
    "csv": {"rate": 6e-5, "hours": 6e-5},
    "page": {"rate": 6e-4, "hours": 0.06},
}


def expected_tables(figures: dict, previous: dict, threshold: float) -> dict:
    """The records each report table should hold, keyed by the table's key columns."""
    total = sum(figures["categories"].values())
    resolved, flagged, escalated, hits = figures["flag"]
    return {
        "categories": {
            (category,): {
                "cases": n,
                "share": n / total,
                "previous_period": previous["categories"].get(category, 0),
            }
            for category, n in figures["categories"].items()
        },
        "volume": {key: {"cases": n} for key, n in figures["volume"].items()},
        "escalation": {
            (category,): {"resolved": n, "predicted_rate": mean, "actual_rate": rate}
            for category, (n, mean, rate) in figures["escalation"].items()
        },
        "flag": {
            (): {
                "threshold": threshold,
                "resolved": resolved,
                "flagged": flagged or 0,
                "escalated": escalated or 0,
                "flagged_escalated": hits or 0,
                "flagged_not_escalated": (flagged or 0) - (hits or 0),
                "missed": (escalated or 0) - (hits or 0),
                "precision": hits / flagged if flagged else None,
                "recall": hits / escalated if escalated else None,
            }
        },
        "root_causes": {
            (cause,): {"cases": n, "escalated": e}
            for cause, n, e in figures["root_causes"]
        },
        "resolution_time": {
            (category,): values
            for category, values in figures["resolution_time"].items()
        },
        "lessons": {
            (category, case_id): {"lesson": lesson}
            for category, case_id, lesson in figures["lessons"]
        },
    }


def _number(value: object) -> float | None:
    """A shown value back as a number: '12.5%' -> 0.125, '3.0 h' -> 3.0, '' -> None."""
    if value is None or value in ("", "—"):
        return None
    if not isinstance(value, str):
        return float(value)
    if value.endswith("%"):
        return float(value[:-1]) / 100
    if value.endswith(" h"):
        return float(value[:-2])
    return float(value)


def _same(actual: object, expected: object, kind: str, source: str) -> bool:
    if kind in ("rate", "hours") or isinstance(expected, float):
        got = _number(actual)
        want = float(expected) if expected is not None else None
        if got is None or want is None:
            return got is None and want is None
        return abs(got - want) <= TOLERANCE[source].get(kind, 1e-9)
    if isinstance(expected, int) and not isinstance(expected, bool):
        return int(actual) == expected
    return str(actual) == str(expected)


def check_table(
    name: str, columns, records: list[dict], expected: dict, source: str
) -> None:
    """`records` (from the report, the CSV or the page) hold exactly the expected rows."""
    kinds = {column.key: column.kind for column in columns}
    keys = KEYS[name]
    seen = {}
    for record in records:
        seen[tuple(str(record[k]) for k in keys)] = record
    assert set(seen) == set(expected), (name, source, set(seen) ^ set(expected))
    for key, want in expected.items():
        for column, value in want.items():
            got = seen[key][column]
            assert _same(got, value, kinds[column], source), (
                name,
                source,
                key,
                column,
                got,
                value,
            )


def page_records(rows: list[list[str]], columns) -> list[dict]:
    """A page table's body rows as records keyed like the report's columns."""
    header, *body = rows
    assert header == [column.heading for column in columns]
    return [dict(zip([c.key for c in columns], row, strict=True)) for row in body]


SECTIONS = {
    "categories": "volume",
    "escalation": "escalation",
    "flag": "flag",
    "root_causes": "root-causes",
    "resolution_time": "resolution-time",
}


def cfpb_frame(per_month: dict[str, int], random_state: int = 0):
    """Real CFPB rows with a mapped product, sampled per month of receipt ("2023-06": 300)."""
    import pandas as pd

    from tests.conftest import CFPB_2023

    frame = pd.read_csv(CFPB_2023, dtype=str, keep_default_na=False)
    mapping = cfpb_source().category_map
    frame = frame[frame["product"].map(lambda p: bool(mapping.get(p)))]
    parts = [
        frame[frame["date_received"].str.startswith(month)].sample(
            n, random_state=random_state
        )
        for month, n in per_month.items()
    ]
    return pd.concat(parts).reset_index(drop=True)


def cfpb_source():
    from tests.conftest import REPO
    from triage.datasets import load_spec

    return load_spec(REPO / "data" / "specs" / "cfpb.toml").sources[0]


def cfpb_metadata(row) -> dict:
    return {key: row[key] for key in ("company", "state", "tags") if row[key]}


def cfpb_seeds(frame, predictions, shift=None) -> list[Seed]:
    """A case per CFPB row with a realistic outcome: escalated when the company granted
    relief, the true category from the product (as data/specs/cfpb.toml maps it), the issue
    and sub-issue as the root cause, a lesson when relief was granted. Complaints still in
    progress, and every tenth one, stay open. `shift` moves every timestamp."""
    from datetime import timedelta

    source = cfpb_source()
    positive = set(source.escalation.positive)
    shift = shift or timedelta(0)
    made = []
    for (_, row), prediction in zip(frame.iterrows(), predictions, strict=True):
        number = int(row["complaint_id"])
        # CFPB dates are days (noon in Washington): spread over the same UTC day.
        created = _instant(row["date_received"]) + timedelta(hours=number % 6) + shift
        resolved = _instant(row["date_sent_to_company"]) + shift
        resolved = max(resolved, created) + timedelta(hours=1 + number % 96)
        response = row["company_response"]
        outcomes = ()
        if response in positive or response == "Closed with explanation":
            if number % 10:
                outcomes = (_cfpb_outcome(row, source.category_map, positive),)
        made.append(
            Seed(
                f"cfpb-{number}",
                row["complaint_what_happened"],
                cfpb_metadata(row),
                prediction,
                created,
                resolved if outcomes else None,
                outcomes,
            )
        )
    return made


def _instant(text: str) -> datetime:
    from datetime import UTC

    return datetime.fromisoformat(text).astimezone(UTC)


def _cfpb_outcome(row, mapping: dict, positive: set) -> OutcomeDraft:
    escalated = row["company_response"] in positive
    issue, sub_issue = row["issue"], row["sub_issue"]
    cause = f"{issue}: {sub_issue}" if sub_issue else issue
    lesson = ""
    if escalated:
        lesson = (
            f"{row['company']} gave relief for {(sub_issue or issue).lower()}: "
            "check for it on the first call instead of closing with an explanation."
        )
    return OutcomeDraft(
        escalated=escalated,
        category=mapping[row["product"]],
        root_cause=cause,
        resolution=row["company_response"],
        lesson=lesson,
    )
