"""The review page rendered by the server: sign-in, the queue, a case, its form, and that
complaint text is shown inert."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.cases import get_case
from serving.settings import Settings
from tests.conftest import add_key

HOSTILE = (
    'Charged twice <script>alert("x")</script> <img src=x onerror=alert(1)> '
    "</div><b>bold</b> & more"
)


@pytest.fixture
def page(tiny_bundle, flagging_scorer, tmp_path):
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path)
    with TestClient(create_app(settings, scorer=flagging_scorer)) as client:
        caller = {"Authorization": f"Bearer {add_key(client.app, 'caller')}"}
        body = {
            "text": HOSTILE,
            "case_id": "x-1",
            "metadata": {"company": "<i>Acme</i>"},
        }
        assert client.post("/v1/triage", json=body, headers=caller).json()["recorded"]
        client.post(
            "/v1/triage",
            json={"text": "My mortgage escrow doubled.", "case_id": "x-2"},
            headers=caller,
        )
        yield client


def _csrf(response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)


def sign_in(client, role="manager", next_page="/review"):
    key = add_key(client.app, role, "Dana <Reyes>")
    form = client.get("/review/sign-in")
    return client.post(
        "/review/sign-in",
        data={"key": key, "csrf": _csrf(form), "next": next_page},
        follow_redirects=False,
    )


def test_an_unsigned_visit_redirects_to_sign_in(page):
    response = page.get("/review/cases/x-1", follow_redirects=False)
    assert response.status_code == 303
    assert (
        response.headers["location"] == "/review/sign-in?next=%2Freview%2Fcases%2Fx-1"
    )


def test_a_manager_signs_in_and_sees_the_queue(page):
    response = sign_in(page)
    assert response.status_code == 303 and response.headers["location"] == "/review"
    queue = page.get("/review")
    assert queue.status_code == 200
    assert "/review/cases/x-1" in queue.text and "/review/cases/x-2" in queue.text
    assert "Dana &lt;Reyes&gt;" in queue.text


@pytest.mark.parametrize(
    ("role_or_key", "status", "message"),
    [
        ("caller", 403, "the review page needs a manager or admin key"),
        ("bogus", 401, "That key is not valid"),
    ],
)
def test_sign_in_refusals(page, role_or_key, status, message):
    key = add_key(page.app, "caller") if role_or_key == "caller" else "trg_bad_key"
    form = page.get("/review/sign-in")
    response = page.post("/review/sign-in", data={"key": key, "csrf": _csrf(form)})
    assert response.status_code == status and message in html.unescape(response.text)
    assert page.get("/review", follow_redirects=False).status_code == 303


def test_sign_in_goes_back_only_to_review_pages(page):
    assert (
        sign_in(page, next_page="https://evil.example/").headers["location"]
        == "/review"
    )
    assert sign_in(page, next_page="//evil.example").headers["location"] == "/review"
    target = sign_in(page, next_page="/review/cases/x-2").headers["location"]
    assert target == "/review/cases/x-2"


def test_complaint_text_is_rendered_inert(page):
    sign_in(page)
    response = page.get("/review/cases/x-1")
    assert response.status_code == 200
    text = response.text
    assert "<script>alert" not in text and "onerror=alert(1)>" not in text
    assert "<b>bold</b>" not in text and "<i>Acme</i>" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "&lt;i&gt;Acme&lt;/i&gt;" in text
    # The only script is the page's own file; the policy forbids inline ones.
    assert re.findall(r"<script[^>]*>", text) == [
        '<script src="/static/review.js" defer>'
    ]
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"


def test_the_case_view_shows_why_and_the_form(page):
    sign_in(page)
    text = page.get("/review/cases/x-2").text
    assert "Why it was flagged" in text and "Escalation probability" in text
    assert '<datalist id="labels">' in text and 'value="mortgage"' in text
    assert 'name="lesson"' in text and "Record the outcome" in text


def test_recording_an_outcome_from_the_page(page):
    sign_in(page)
    view = page.get("/review/cases/x-2")
    form = {
        "escalated": "yes",
        "category": "escrow analysis",
        "root_cause": "escrow recalculated on a stale tax bill",
        "resolution": "recalculated and refunded",
        "lesson": "Check <the> tax bill date before an escrow analysis",
        "csrf": _csrf(view),
    }
    saved = page.post("/review/cases/x-2/outcome", data=form, follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == "/review/cases/x-2?saved=1"

    after = page.get(saved.headers["location"])
    assert "Outcome saved." in after.text and "Correct the outcome" in after.text
    assert "Check &lt;the&gt; tax bill date" in after.text
    with page.app.state.database.session() as session:
        [outcome] = get_case(session, "x-2").outcomes
    assert outcome.escalated and outcome.category == "escrow analysis"
    assert outcome.reviewer == "Dana <Reyes>"
    assert "x-2" not in page.get("/review").text.split("<tbody>")[1]


def test_a_form_without_its_token_is_refused_and_stores_nothing(page):
    sign_in(page)
    form = {"escalated": "yes", "category": "fees", "csrf": "forged"}
    response = page.post("/review/cases/x-2/outcome", data=form)
    assert response.status_code == 403 and "The form expired" in response.text
    with page.app.state.database.session() as session:
        assert get_case(session, "x-2").outcomes == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"category": "fees"}, "Say whether the case was really escalated"),
        ({"escalated": "yes", "category": "  "}, "category must not be blank"),
    ],
)
def test_an_incomplete_form_comes_back_with_what_to_fix(page, form, message):
    sign_in(page)
    view = page.get("/review/cases/x-2")
    response = page.post(
        "/review/cases/x-2/outcome",
        data={**form, "csrf": _csrf(view), "lesson": "kept"},
    )
    assert response.status_code == 422 and message in response.text
    assert ">kept</textarea>" in response.text


def test_filters_and_an_unknown_case(page):
    sign_in(page)
    queue = page.get("/review", params={"category": "no-such-category"}).text
    assert "No open flagged cases match these filters" in queue
    assert "must be a date" in page.get("/review", params={"since": "yesterday"}).text
    assert page.get("/review/cases/none").status_code == 404


def test_sign_out_ends_the_session(page):
    sign_in(page)
    queue = page.get("/review")
    page.post("/review/sign-out", data={"csrf": _csrf(queue)})
    assert page.get("/review", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "url",
    [
        "/review?until=9999-12-31",
        "/reports?since=0001-01-01",
        "/reports?until=9999-12-31",
        "/reports/digest?until=9999-12-31",
        "/reports/lessons.csv?since=0001-01-01",
    ],
)
def test_dates_outside_any_sensible_year_get_a_message_not_a_crash(page, url):
    sign_in(page)
    response = page.get(url)
    assert response.status_code < 500
    assert "1900" in response.text and "2999" in response.text


def test_the_markdown_digest_falls_back_to_its_default_period_on_impossible_dates(page):
    sign_in(page)
    response = page.get("/reports/digest.md?since=0001-01-01")
    assert response.status_code == 200 and response.text.startswith("# Lessons digest")
