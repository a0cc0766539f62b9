"""A manager opens the reports page and the digest in a real browser (Debian's Chromium
driven by Playwright) against a real `triage serve` process, on real CFPB complaints with
outcomes over the last weeks, and a screenshot of each is taken."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from serving.auth import Principal, create_key
from serving.db.engine import Database
from tests.conftest import served
from tests.report_checks import cfpb_frame, cfpb_metadata, cfpb_seeds, seed
from tests.test_review_browser import browser_page
from triage.scorer import Complaint


def _seed_database(url: str, scorer) -> str:
    """180 real complaints moved so that the last CFPB day is yesterday; returns a
    manager key."""
    frame = cfpb_frame({"2023-06": 150, "2023-05": 30}, random_state=1)
    complaints = [
        Complaint(row["complaint_what_happened"], cfpb_metadata(row))
        for _, row in frame.iterrows()
    ]
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    shift = timedelta(days=(yesterday - date(2023, 6, 30)).days)
    database = Database(url)
    try:
        database.upgrade()
        with database.session() as session, session.begin():
            row, key = create_key(session, "Dana Reyes", "manager")
            principal = Principal(row.id, row.name, row.role)
        seed(database, cfpb_seeds(frame, scorer.score(complaints), shift), principal)
    finally:
        database.dispose()
    return key


@pytest.fixture
def server(tiny_bundle, tiny_scorer, tmp_path):
    key = _seed_database(f"sqlite:///{tmp_path / 'triage.sqlite3'}", tiny_scorer)
    env = {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(tiny_bundle),
        "TRIAGE_DATA_DIR": str(tmp_path),
        "TRIAGE_THREADS": "1",
    }
    with served(env, tmp_path) as base:
        yield base, key


def test_a_manager_reads_the_reports_and_the_digest(server, tmp_path):
    base, key = server
    with browser_page(height=900) as page:
        _read(page, base, key, tmp_path)
    assert (tmp_path / "reports.png").stat().st_size > 10_000
    assert (tmp_path / "digest.png").stat().st_size > 10_000


def _read(page, base: str, key: str, tmp_path: Path) -> None:
    page.goto(f"{base}/reports")
    expect(page).to_have_url(f"{base}/review/sign-in?next=%2Freports")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/reports")

    expect(
        page.get_by_role("heading", name="Complaint volume by failure category")
    ).to_be_visible()
    charts = page.locator("figure.chart svg[role=img]")
    expect(charts).to_have_count(4)
    for index in range(4):
        expect(charts.nth(index)).to_be_visible()
        assert charts.nth(index).bounding_box()["height"] > 50
    expect(page.locator("#chart-volume-title")).to_have_text(
        "Complaint volume per day by failure category"
    )
    assert page.locator("figure.chart rect").count() > 30
    expect(
        page.get_by_role("heading", name="Lessons learned, by category")
    ).to_be_visible()

    link = page.locator("a.csv[href^='/reports/lessons.csv']")
    download = page.request.get(base + link.get_attribute("href"))
    assert download.status == 200 and download.headers["content-type"].startswith(
        "text/csv"
    )
    assert download.text().startswith("category,case_id,escalated,lesson,resolved_at")
    page.screenshot(path=str(tmp_path / "reports.png"), full_page=True)

    page.get_by_role("link", name="Digest of this period").click()
    expect(page.get_by_role("heading", name="In numbers")).to_be_visible()
    expect(page.locator("article.digest h1")).to_contain_text("Lessons digest: ")
    expect(page.get_by_role("heading", name="Lessons recorded")).to_be_visible()
    page.screenshot(path=str(tmp_path / "digest.png"), full_page=True)

    page.emulate_media(media="print")
    expect(page.locator("header.bar")).to_be_hidden()
    page.emulate_media(media="screen")
