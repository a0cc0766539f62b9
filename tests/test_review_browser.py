"""A manager reviews a flagged case in a real browser (Debian's Chromium driven by Playwright)
against a real `triage serve` process, and the outcome lands in the database."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from serving.cases import get_case
from serving.db.engine import Database
from tests.conftest import cli_key, served

CHROMIUM = os.environ.get("TRIAGE_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = "Charged twice <img src=x onerror=\"document.title='pwned'\"> and no refund."


@contextmanager
def browser_page(width: int = 1366, height: int = 768) -> Iterator[Page]:
    """A page in headless Chromium (Debian's, never a downloaded one), closed after."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install "
            "chromium`, which `make test` does) or set TRIAGE_TEST_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


@pytest.fixture
def server(tiny_bundle, tmp_path):
    """`triage serve` on a free port, flagging everything, with its own SQLite file."""
    env = {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(tiny_bundle),
        "TRIAGE_DATA_DIR": str(tmp_path),
        "TRIAGE_ESCALATION_THRESHOLD": "0",
        "TRIAGE_THREADS": "1",
    }

    keys = {
        "caller": cli_key(env, "caller", "call software"),
        "manager": cli_key(env, "manager", "Dana Reyes"),
    }
    with served(env, tmp_path) as base:
        yield base, keys, f"sqlite:///{tmp_path / 'triage.sqlite3'}"


def test_a_manager_reviews_a_flagged_case_in_the_browser(
    server, real_complaints, tmp_path
):
    base, keys, database_url = server
    caller = {"Authorization": f"Bearer {keys['caller']}"}
    for case_id, text in [("call-1001", real_complaints[0]), ("call-1002", HOSTILE)]:
        scored = httpx.post(
            f"{base}/v1/triage",
            json={"text": text, "case_id": case_id, "metadata": {"company": "Acme"}},
            headers=caller,
            timeout=30,
        )
        assert scored.status_code == 200 and scored.json()["recorded"], scored.text
        assert scored.json()["escalation"]["flagged"]

    with browser_page(height=768) as page:
        _review(page, base, keys["manager"], tmp_path)

    database = Database(database_url)
    try:
        with database.session() as session:
            case = get_case(session, "call-1001")
            [outcome] = case.outcomes
    finally:
        database.dispose()
    assert case.status == "resolved"
    assert outcome.escalated is True and outcome.category == "billing dispute"
    assert outcome.lesson == "Confirm the refund reached the account before closing."
    assert outcome.reviewer == "Dana Reyes"


def _review(page, base: str, manager_key: str, tmp_path: Path) -> None:
    page.goto(f"{base}/review")
    expect(page).to_have_url(f"{base}/review/sign-in?next=%2Freview")

    # Sign in with the keyboard only.
    page.get_by_label("API key").fill(manager_key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/review")
    expect(page.get_by_role("link", name="call-1001")).to_be_visible()
    expect(page.get_by_role("link", name="call-1002")).to_be_visible()

    # j moves to the first case and Enter opens it (once the page's script has run).
    page.wait_for_load_state("load")
    page.keyboard.press("j")
    expect(page.locator("tr.current")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r".*/review/cases/call-100[12]$"))
    page.goto(f"{base}/review/cases/call-1002")
    assert page.title() != "pwned"
    expect(page.locator(".complaint-text")).to_contain_text("onerror=")

    page.goto(f"{base}/review")
    page.get_by_role("link", name="call-1001").click()
    expect(page.get_by_role("heading", name="Why it was flagged")).to_be_visible()
    expect(page.locator(".complaint-text")).to_be_visible()

    page.get_by_label("Yes").check()
    page.get_by_label("True category").fill("billing dispute")
    page.get_by_label("Root cause").fill("A refund was promised but never issued.")
    page.get_by_label("Resolution").fill("Refund issued and confirmed by phone.")
    page.get_by_label("Lesson learned").fill(
        "Confirm the refund reached the account before closing."
    )
    page.get_by_role("button", name="Save outcome").click()
    expect(page).to_have_url(f"{base}/review/cases/call-1001?saved=1")
    expect(page.get_by_role("status")).to_have_text("Outcome saved.")
    page.screenshot(path=str(tmp_path / "review-case.png"), full_page=True)
