"""The reports page, its CSV and the digest on real CFPB complaints scored by the default
model, with a few hundred outcomes derived from what the companies really did; every figure
is computed again in plain SQL."""

from __future__ import annotations

import html
from datetime import date

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serving.app import create_app
from serving.auth import Principal, create_key
from serving.reports import TABLE_NAMES, build_report
from serving.settings import Settings
from tests.conftest import DEFAULT_BUNDLE
from tests.report_checks import (
    SECTIONS,
    cfpb_frame,
    cfpb_metadata,
    cfpb_seeds,
    check_table,
    expected_tables,
    page_records,
    page_tables,
    read_csv,
    seed,
    sql_figures,
)
from tests.test_reports import _unquoted
from tests.test_review import sign_in
from triage.periods import days
from triage.scorer import Complaint, Scorer
from triage_cli.main import app as cli

pytestmark = pytest.mark.slow

JUNE = days(date(2023, 6, 1), date(2023, 6, 30))
PERIOD = {"since": "2023-06-01", "until": "2023-06-30"}


@pytest.fixture(scope="module")
def scorer():
    return Scorer(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def scored(scorer):
    """300 complaints received in June 2023 and 40 from the day before, scored once."""
    frame = cfpb_frame({"2023-06": 300, "2023-05": 40})
    complaints = [
        Complaint(row["complaint_what_happened"], cfpb_metadata(row))
        for _, row in frame.iterrows()
    ]
    predictions = []
    for start in range(0, len(complaints), 32):
        predictions += scorer.score(complaints[start : start + 32])
    return frame, predictions


@pytest.fixture
def client(database, database_url, scorer, scored):
    with database.session() as session, session.begin():
        row, _ = create_key(session, "Dana Reyes", "manager")
        principal = Principal(row.id, row.name, row.role)
    seed(database, cfpb_seeds(*scored), principal)
    settings = Settings(model_dir=DEFAULT_BUNDLE, database_url=database_url)
    with TestClient(create_app(settings, scorer=scorer)) as client:
        sign_in(client)
        yield client


def test_real_complaints_page_and_csv_match_sql(client, database, scorer):
    threshold = scorer.threshold
    with database.engine.connect() as connection:
        figures = sql_figures(
            connection, database.backend, JUNE.since, JUNE.until, threshold
        )
        previous = sql_figures(
            connection,
            database.backend,
            JUNE.previous().since,
            JUNE.previous().until,
            threshold,
        )
    expected = expected_tables(figures, previous, threshold)
    # A few hundred outcomes, of every kind the tables need.
    assert figures["flag"][0] >= 200 and 0 < figures["flag"][2] < figures["flag"][0]
    assert len(figures["root_causes"]) > 10 and len(figures["lessons"]) >= 50

    with database.session() as session:
        report = build_report(session, JUNE, threshold)
    for name in TABLE_NAMES:
        table = report.tables[name]
        check_table(name, table.columns, table.records(), expected[name], "raw")

    response = client.get("/reports", params=PERIOD)
    assert response.status_code == 200
    assert response.text.count("<svg viewBox=") == 4
    tables = page_tables(response.text)
    for name, section in SECTIONS.items():
        columns = report.tables[name].columns
        want = expected[name]
        if name == "root_causes":
            want = dict(list(want.items())[:10])
        check_table(name, columns, page_records(tables[section], columns), want, "page")
    shown = html.unescape(response.text)
    assert all(lesson in shown for _, _, lesson in figures["lessons"])

    for name in TABLE_NAMES:
        body = client.get(f"/reports/{name}.csv", params=PERIOD).text
        records = [
            {key: _unquoted(value) for key, value in record.items()}
            for record in read_csv(body)
        ]
        check_table(name, report.tables[name].columns, records, expected[name], "csv")


def test_the_digest_of_real_complaints(client, database, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_DATABASE_URL", database.url.render_as_string(False))
    result = CliRunner().invoke(
        cli,
        [
            "digest",
            "--since",
            "2023-06-01",
            "--until",
            "2023-06-30",
            "--output",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "digest-2023-06-01-to-2023-06-30.md").read_text()
    assert (
        "| credit\\_reporting |" in markdown and "### credit\\_reporting (" in markdown
    )
    with database.engine.connect() as connection:
        now, before = (
            sql_figures(connection, database.backend, p.since, p.until, 0.5)
            for p in (JUNE, JUNE.previous())
        )
    created, earlier = (
        sum(now["categories"].values()),
        sum(before["categories"].values()),
    )
    assert (created, earlier) == (300, 40)
    numbers = f"Complaints scored: {created} (previous period {earlier}, +{created - earlier})"
    assert numbers in markdown
    assert f"Lessons recorded: {len(now['lessons'])} in " in markdown
    page = client.get("/reports/digest", params=PERIOD).text
    assert numbers in page
