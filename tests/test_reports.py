"""The reports page, its CSV downloads and the digest on both backends: the figures are
computed again in plain SQL and must match what the report, the page and the CSV show."""

from __future__ import annotations

import html
import random
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serving.app import create_app
from serving.auth import Principal, create_key
from serving.cases import OutcomeDraft
from serving.digest import build_digest, markdown_text, render_markdown
from serving.reports import TABLE_NAMES, build_report, spreadsheet_safe, to_csv
from serving.settings import Settings
from tests.report_checks import (
    SECTIONS,
    Seed,
    check_table,
    expected_tables,
    page_records,
    page_tables,
    read_csv,
    seed,
    sql_figures,
)
from tests.test_review import _csrf, sign_in
from triage.periods import days
from triage.scorer import (
    CategoryScore,
    EscalationScore,
    LabelScore,
    Prediction,
    Scorer,
)
from triage_cli.main import app as cli

THRESHOLD = 0.5
CATEGORIES = ["credit_card", "mortgage", "debt_collection", "bank_account"]
ROOT_CAUSES = [
    "card processor retried the capture",
    "escrow recalculated on a stale tax bill",
    "collector called outside permitted hours",
    '=HYPERLINK("http://evil.example","click")',
    "<script>alert(1)</script> in the notes",
]
LESSONS = [
    "Check for duplicate captures before telling a customer no.",
    "+1 to calling back within a day",
    "@team read the escrow notice",
    "-- confirm the tax bill date first",
    '<img src=x onerror="alert(1)"> | *bold* [link](http://evil.example)',
]
NOVEMBER = days(date(2026, 11, 1), date(2026, 11, 30))


def prediction(probability: float, category: str) -> Prediction:
    top = [LabelScore(category, 0.7), LabelScore("other", 0.3)]
    return Prediction(
        EscalationScore(probability, probability >= THRESHOLD, THRESHOLD),
        CategoryScore(category, 0.7, top),
        "tiny-test",
        1,
    )


def seeds() -> list[Seed]:
    """Sixty cases over October and November 2026: most resolved, some corrected, some
    open, some with free text that a browser, Markdown or a spreadsheet would run."""
    rng = random.Random(7)
    start = datetime(2026, 10, 2, tzinfo=UTC)
    made = []
    for i in range(60):
        created = start + timedelta(hours=rng.randrange(0, 59 * 24))
        if 1 <= i <= 5:  # every kind of hostile text lands in November
            created = datetime(2026, 11, 10 + i, 9, tzinfo=UTC)
        category = rng.choice(CATEGORIES)
        probability = round(rng.random(), 3)
        outcomes = ()
        resolved = None
        if i % 6 != 0:
            resolved = created + timedelta(minutes=rng.randrange(30, 6 * 24 * 60))
            draft = OutcomeDraft(
                escalated=rng.random() < probability,
                category=rng.choice([category, category, "fees"]),
                root_cause=ROOT_CAUSES[i - 1]
                if i <= 5
                else rng.choice([*ROOT_CAUSES, ""]),
                resolution="refunded",
                lesson=LESSONS[i - 1] if i <= 5 else rng.choice([*LESSONS, ""]),
            )
            outcomes = (draft,)
            if i % 5 == 0 and i > 5:
                outcomes += (OutcomeDraft(not draft.escalated, "billing", "", "", ""),)
        text = f"Complaint {i} about {category.replace('_', ' ')}."
        made.append(
            Seed(
                f"r-{i:02d}",
                text,
                {"company": "Acme"},
                prediction(probability, category),
                created,
                resolved,
                outcomes,
            )
        )
    return made


@pytest.fixture
def seeded(database):
    with database.session() as session, session.begin():
        row, _ = create_key(session, "Dana Reyes", "manager")
        principal = Principal(row.id, row.name, row.role)
    seed(database, seeds(), principal)
    return database


def _figures(database, period):
    with database.engine.connect() as connection:
        return sql_figures(
            connection, database.backend, period.since, period.until, THRESHOLD
        )


def _expected(database, period):
    return expected_tables(
        _figures(database, period), _figures(database, period.previous()), THRESHOLD
    )


def test_the_report_matches_sql(seeded):
    with seeded.session() as session:
        report = build_report(session, NOVEMBER, THRESHOLD)
    expected = _expected(seeded, NOVEMBER)
    assert report.unit == "day" and report.created > 0 and report.resolved > 0
    for name in TABLE_NAMES:
        table = report.tables[name]
        check_table(name, table.columns, table.records(), expected[name], "raw")
    causes = [row[0] for row in report.root_causes.rows]
    assert causes == [cause for (cause,) in expected["root_causes"]]
    # Corrections count through the current outcome: "billing" only ever comes from one.
    assert any(row[0] == "billing" for row in report.escalation.rows)


@pytest.fixture
def pages(seeded, tiny_bundle):
    url = seeded.url.render_as_string(hide_password=False)
    settings = Settings(model_dir=tiny_bundle, database_url=url)
    scorer = Scorer(tiny_bundle, threads=1, threshold=THRESHOLD)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        sign_in(client)
        yield client


PERIOD = {"since": "2026-11-01", "until": "2026-11-30"}


def test_the_page_and_every_csv_match_sql(pages, seeded):
    expected = _expected(seeded, NOVEMBER)
    with seeded.session() as session:
        report = build_report(session, NOVEMBER, THRESHOLD)

    response = pages.get("/reports", params=PERIOD)
    assert response.status_code == 200
    tables = page_tables(response.text)
    for name, section in SECTIONS.items():
        columns = report.tables[name].columns
        records = page_records(tables[section], columns)
        want = expected[name]
        if name == "root_causes":
            want = dict(list(want.items())[:10])
            assert [r["root_cause"] for r in records] == [k[0] for k in want]
        check_table(name, columns, records, want, "page")

    text = html.unescape(response.text)
    for _, _, lesson in _figures(seeded, NOVEMBER)["lessons"]:
        assert lesson in text

    for name in TABLE_NAMES:
        download = pages.get(f"/reports/{name}.csv", params=PERIOD)
        assert download.status_code == 200, download.text
        assert download.headers["content-type"].startswith("text/csv")
        assert "attachment" in download.headers["content-disposition"]
        records = [
            {key: _unquoted(value) for key, value in record.items()}
            for record in read_csv(download.text)
        ]
        check_table(name, report.tables[name].columns, records, expected[name], "csv")


def _unquoted(value: str) -> str:
    """A CSV cell as it was before formula escaping (checked on its own below)."""
    return value[1:] if value.startswith("'") and value[1:2] in "=+-@" else value


def test_csv_cells_cannot_run_as_formulas(pages):
    body = pages.get("/reports/lessons.csv", params=PERIOD).text
    cells = [value for record in read_csv(body) for value in record.values()]
    assert "'+1 to calling back within a day" in cells
    assert "'@team read the escrow notice" in cells
    assert "'-- confirm the tax bill date first" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    causes = read_csv(pages.get("/reports/root_causes.csv", params=PERIOD).text)
    assert '\'=HYPERLINK("http://evil.example","click")' in [
        r["root_cause"] for r in causes
    ]
    assert spreadsheet_safe("\t=1") == "'\t=1" and spreadsheet_safe(-3) == -3


def test_the_page_draws_charts_and_keeps_free_text_inert(pages):
    response = pages.get("/reports", params=PERIOD)
    text = response.text
    assert len(re.findall(r"<svg viewBox=", text)) == 4
    assert "<script>alert(1)" not in text and 'onerror="alert(1)"' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert re.findall(r"<script[^>]*>", text) == [
        '<script src="/static/review.js" defer>'
    ]
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert 'href="/reports/lessons.csv?since=2026-11-01&amp;until=2026-11-30"' in text
    assert '<a href="/reports">Reports</a>' in text


def test_the_default_period_and_bad_dates(pages):
    today = datetime.now(UTC).date()
    default = pages.get("/reports").text
    first = (today - timedelta(days=29)).isoformat()
    assert f'name="since" value="{first}"' in default
    assert f'name="until" value="{today.isoformat()}"' in default

    wrong = pages.get("/reports", params={"since": "last week"}).text
    assert "From &#39;last week&#39; is not a date: use YYYY-MM-DD" in wrong
    backwards = pages.get(
        "/reports", params={"since": "2026-11-30", "until": "2026-11-01"}
    )
    assert "give the earlier date first" in backwards.text

    assert pages.get("/reports/nothing.csv").status_code == 404
    assert "the tables are categories" in pages.get("/reports/nothing.csv").text
    refused = pages.get("/reports/lessons.csv", params={"until": "soon"})
    assert refused.status_code == 422 and "not a date" in refused.text


def test_the_digest_page_and_markdown(pages, seeded):
    with seeded.session() as session:
        digest = build_digest(session, NOVEMBER)
    page = pages.get("/reports/digest", params=PERIOD)
    assert page.status_code == 200
    assert "Lessons digest: 2026-11-01 to 2026-11-30" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    for group in digest.lessons:
        assert html.escape(group.category) in page.text

    markdown = pages.get("/reports/digest.md", params=PERIOD)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text == render_markdown(digest)


def test_the_digest_counts_and_compares(seeded):
    with seeded.session() as session:
        digest = build_digest(session, NOVEMBER)
        before = build_report(session, NOVEMBER.previous(), None)
        now = build_report(session, NOVEMBER, None)
    figures = _figures(seeded, NOVEMBER)
    assert digest.numbers[0].startswith(
        f"Complaints scored: {now.created} (previous period {before.created}"
    )
    assert digest.lesson_count == len(figures["lessons"])
    assert sum(g.cases for g in digest.lessons) == len(figures["lessons"])
    top = sorted(figures["categories"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(label, n) for label, n, _ in digest.failed_most] == top
    assert any("rose" in c or "fell" in c for c in digest.changes)

    markdown = render_markdown(digest)
    assert "## What failed most" in markdown and "## Lessons recorded" in markdown
    assert not re.search(r"(?<!\\)[<>]", markdown) and r"\<img src=x" in markdown
    assert r"\*bold\* \[link\](http://evil.example)" in markdown
    assert r"\| \*bold\*" in markdown


def test_markdown_text_is_inert():
    assert markdown_text("# Title") == r"\# Title"
    assert markdown_text("1. first\nsecond") == r"1\. first second"
    assert markdown_text("a_b <b>x</b> `code` ~x~ & y") == (
        r"a\_b \<b\>x\</b\> \`code\` \~x\~ \& y"
    )


def test_the_commands_write_the_report_and_the_digest(seeded, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_DATABASE_URL", seeded.url.render_as_string(False))
    runner = CliRunner()
    arguments = ["--since", "2026-11-01", "--until", "2026-11-30"]
    report = runner.invoke(
        cli,
        ["report", *arguments, "--threshold", "0.5", "--csv", str(tmp_path / "csv")],
    )
    assert report.exit_code == 0, report.output
    assert "How the flag performed at the current threshold" in report.stdout
    written = sorted(p.name for p in (tmp_path / "csv").iterdir())
    assert written == sorted(f"{name}.csv" for name in TABLE_NAMES)
    with seeded.session() as session:
        table = build_report(session, NOVEMBER, THRESHOLD).root_causes
    assert (tmp_path / "csv" / "root_causes.csv").read_bytes() == to_csv(table).encode()

    digest = runner.invoke(cli, ["digest", *arguments, "--output", str(tmp_path)])
    assert digest.exit_code == 0, digest.output
    markdown = tmp_path / "digest-2026-11-01-to-2026-11-30.md"
    page = tmp_path / "digest-2026-11-01-to-2026-11-30.html"
    assert markdown.read_text().startswith("# Lessons digest: 2026-11-01 to 2026-11-30")
    assert "<style>" in page.read_text() and "&lt;img src=x" in page.read_text()

    bad = runner.invoke(cli, ["digest", "--since", "fortnight"])
    assert bad.exit_code == 1
    assert "--since 'fortnight' is not understood" in " ".join(bad.output.split())


def test_sign_in_returns_to_the_reports_page(pages):
    pages.post("/review/sign-out", data={"csrf": _csrf(pages.get("/reports"))})
    response = pages.get("/reports/digest", follow_redirects=False)
    assert response.headers["location"] == "/review/sign-in?next=%2Freports%2Fdigest"
    assert sign_in(pages, next_page="/reports/digest").headers["location"] == (
        "/reports/digest"
    )
