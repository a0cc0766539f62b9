"""Cases, predictions and outcomes on SQLite and PostgreSQL: the storage layer and its API."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from serving.app import create_app
from serving.auth import Principal, create_key
from serving.cases import (
    CaseFilter,
    CaseRecord,
    OutcomeDraft,
    get_case,
    list_cases,
    record_cases,
    record_outcome,
)
from serving.db.engine import Database
from serving.db.models import Base, CachedExplanation, Case, Outcome
from serving.settings import Settings
from tests.conftest import add_key, authorise
from triage.redaction import Redactor
from triage.scorer import Complaint

CARD = "4111 1111 1111 1111"


def test_migrations_build_exactly_the_models(database):
    with database.engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), Base.metadata
        )
    assert differences == []


def test_upgrade_twice_is_harmless(database):
    database.upgrade()
    with database.session() as session:
        assert session.scalar(select(func.count(Case.id))) == 0


@pytest.fixture
def manager(database) -> Principal:
    with database.session() as session, session.begin():
        row, _ = create_key(session, "Dana Reyes", "manager")
        return Principal(row.id, row.name, row.role)


def _store(database, tiny_scorer, case_id, text, redactor=None, principal=None):
    [prediction] = tiny_scorer.score([Complaint(text, {"company": "Acme"})])
    record = CaseRecord(case_id, text, {"company": "Acme"}, prediction)
    with database.session() as session, session.begin():
        return record_cases(session, [record], redactor, principal)[0]


def test_scoring_a_case_again_adds_to_its_history(database, tiny_scorer):
    _store(database, tiny_scorer, "call-1", "I was charged twice.")
    _store(
        database, tiny_scorer, "call-1", "I was charged twice and nobody called back."
    )

    with database.session() as session:
        case = get_case(session, "call-1")
        assert len(case.predictions) == 2
        assert case.text.endswith("nobody called back.")
        assert case.status == "open" and case.outcomes == []
        assert case.model_version == "tiny-test"
        assert (
            case.escalation_probability == case.predictions[-1].escalation_probability
        )
        assert case.created_at.tzinfo is not None


def test_a_generated_case_id(database, tiny_scorer):
    case_id = _store(database, tiny_scorer, None, "My loan payment vanished.")
    assert case_id.startswith("case-")
    with database.session() as session:
        assert get_case(session, case_id) is not None


def test_outcome_resolves_and_corrections_keep_history(database, tiny_scorer, manager):
    _store(
        database, tiny_scorer, "call-2", "The bank closed my account without notice."
    )
    first = OutcomeDraft(
        True, "bank_account", "policy not explained", "refund", "explain"
    )
    with database.session() as session, session.begin():
        record_outcome(session, get_case(session, "call-2"), first, manager)
    with database.session() as session:
        resolved_at = get_case(session, "call-2").resolved_at

    correction = OutcomeDraft(True, "fees", "policy not explained", "refund", "explain")
    with database.session() as session, session.begin():
        record_outcome(session, get_case(session, "call-2"), correction, manager)

    with database.session() as session:
        case = get_case(session, "call-2")
        assert case.status == "resolved" and case.resolved_at == resolved_at
        assert [o.revision for o in case.outcomes] == [1, 2]
        assert case.outcomes[0].changed is None
        assert case.outcomes[1].changed == ["category"]
        assert {o.reviewer for o in case.outcomes} == {"Dana Reyes"}


def test_a_failing_batch_stores_nothing(database, tiny_scorer):
    class Failing(Redactor):
        calls = 0

        def redact(self, text):
            Failing.calls += 1
            if Failing.calls == 2:
                raise RuntimeError("disk full")
            return super().redact(text)

    texts = ["first complaint", "second complaint"]
    records = [
        CaseRecord(f"batch-{i}", t, None, p)
        for i, (t, p) in enumerate(
            zip(texts, tiny_scorer.score([Complaint(t) for t in texts]), strict=True)
        )
    ]
    with pytest.raises(RuntimeError), database.session() as session, session.begin():
        record_cases(session, records, Failing(), None)
    with database.session() as session:
        assert session.scalar(select(func.count(Case.id))) == 0


def test_text_is_redacted_before_storage(database, tiny_scorer):
    text = f"Call me at (555) 867-5309 or jane.doe@example.com; my card {CARD} was charged."
    _store(database, tiny_scorer, "call-3", text, Redactor())
    with database.session() as session:
        case = get_case(session, "call-3")
    assert "867-5309" not in case.text and "jane.doe" not in case.text
    assert CARD not in case.text and "[CARD]" in case.text
    assert case.redactions == {"email": 1, "phone": 1, "card": 1}


def test_list_filters_orders_and_pages(database, tiny_scorer):
    for i in range(7):
        _store(
            database, tiny_scorer, f"q-{i}", f"complaint number {i} about my mortgage"
        )
    with database.session() as session:
        everything, total = list_cases(session, CaseFilter(order="escalation"))
        probabilities = [c.escalation_probability for c in everything]
        assert total == 7 and probabilities == sorted(probabilities, reverse=True)

        page, total = list_cases(session, CaseFilter(limit=3, offset=6))
        assert total == 7 and len(page) == 1

        category = everything[0].category
        same, total = list_cases(session, CaseFilter(category=category))
        assert total == sum(c.category == category for c in everything)

        later = datetime.now(UTC) + timedelta(days=1)
        assert list_cases(session, CaseFilter(since=later))[1] == 0
        assert list_cases(session, CaseFilter(status="resolved"))[1] == 0


# The HTTP API, on both backends.


@pytest.fixture
def api(database_url, tiny_bundle, flagging_scorer):
    settings = Settings(model_dir=tiny_bundle, database_url=database_url)
    with TestClient(create_app(settings, scorer=flagging_scorer)) as client:
        yield client


def _manager(api) -> dict:
    return {"Authorization": f"Bearer {add_key(api.app, 'manager', 'Dana Reyes')}"}


def test_score_record_review_and_correct(api):
    caller = {"Authorization": f"Bearer {add_key(api.app, 'caller')}"}
    body = {"text": "They charged me twice and hung up on me.", "case_id": "call-77"}
    scored = api.post("/v1/triage", json=body, headers=caller).json()
    assert scored["case_id"] == "call-77" and scored["recorded"] is True
    api.post("/v1/triage", json=body, headers=caller)

    manager = _manager(api)
    case = api.get("/v1/cases/call-77", headers=manager).json()
    assert case["status"] == "open" and len(case["predictions"]) == 2
    assert case["predictions"][0]["model_version"] == "tiny-test"
    assert case["flagged"] is True and case["outcome"] is None

    outcome = {
        "escalated": True,
        "category": "double billing",
        "root_cause": "the card processor retried the charge",
        "resolution": "refunded",
        "lesson": "check for duplicate captures before telling a customer no",
    }
    saved = api.post("/v1/cases/call-77/outcome", json=outcome, headers=manager)
    assert saved.status_code == 201, saved.text
    assert saved.json()["revision"] == 1 and saved.json()["new_category"] is True
    assert saved.json()["reviewer"] == "Dana Reyes"

    corrected = api.post(
        "/v1/cases/call-77/outcome",
        json={**outcome, "escalated": False},
        headers=manager,
    ).json()
    assert corrected["revision"] == 2 and corrected["changed"] == ["escalated"]

    case = api.get("/v1/cases/call-77", headers=manager).json()
    assert case["status"] == "resolved" and case["outcome"]["escalated"] is False
    assert [o["revision"] for o in case["outcomes"]] == [1, 2]


def test_record_true_makes_an_id_and_batches_record_per_item(api):
    authorise(api)
    items = [{"text": "lost card", "record": True}, {"text": "late fee"}]
    results = api.post("/v1/triage/batch", json={"items": items}).json()["results"]
    assert results[0]["recorded"] and results[0]["case_id"].startswith("case-")
    assert not results[1]["recorded"] and results[1]["case_id"] is None


@pytest.mark.parametrize(
    "case_id", ["", "a" * 129, "has space", "<script>", "semi;colon", "é"]
)
def test_invalid_case_ids_are_refused(api, case_id):
    authorise(api)
    response = api.post("/v1/triage", json={"text": "late fee", "case_id": case_id})
    assert response.status_code == 422
    assert "1-128 characters of letters, digits" in response.text


def test_listing_cases(api):
    authorise(api)
    for i in range(5):
        api.post("/v1/triage", json={"text": f"escrow error {i}", "case_id": f"l-{i}"})
    manager = _manager(api)
    page = api.get(
        "/v1/cases",
        params={"flagged": "true", "status": "open", "limit": 2, "order": "escalation"},
        headers=manager,
    ).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    first, second = page["items"]
    assert first["escalation_probability"] >= second["escalation_probability"]

    category = first["category"]
    filtered = api.get("/v1/cases", params={"category": category}, headers=manager)
    assert all(c["category"] == category for c in filtered.json()["items"])
    assert api.get("/v1/cases", params={"limit": 0}, headers=manager).status_code == 422


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"escalated": "yes", "category": "x"}, "valid boolean"),
        ({"escalated": True, "category": "   "}, "category must not be blank"),
        ({"escalated": True}, "Field required"),
        ({"escalated": True, "category": "x", "lesson": "l" * 10_001}, "at most 10000"),
        ({"escalated": True, "category": "x", "extra": 1}, "Extra inputs"),
    ],
)
def test_bad_outcomes_are_refused_and_store_nothing(api, body, fragment):
    authorise(api)
    api.post("/v1/triage", json={"text": "late fee", "case_id": "o-1"})
    manager = _manager(api)
    response = api.post("/v1/cases/o-1/outcome", json=body, headers=manager)
    assert response.status_code == 422 and fragment in response.text
    assert api.get("/v1/cases/o-1", headers=manager).json()["outcomes"] == []


def test_unknown_case_is_404(api):
    manager = _manager(api)
    assert api.get("/v1/cases/nope", headers=manager).status_code == 404
    outcome = {"escalated": True, "category": "x"}
    response = api.post("/v1/cases/nope/outcome", json=outcome, headers=manager)
    assert response.status_code == 404 and "no case 'nope'" in response.text


def test_explanation_is_computed_once_and_points_into_the_text(api):
    authorise(api)
    text = (
        "I called the bank five times. Every agent promised a callback. Nobody called. "
        "My account is still frozen and my rent bounced."
    )
    api.post("/v1/triage", json={"text": text, "case_id": "e-1"})
    manager = _manager(api)
    first = api.get("/v1/cases/e-1/explanation", headers=manager)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["target"] == "escalation" and body["model_version"] == "tiny-test"
    for phrase in body["raised"] + body["lowered"]:
        assert text[phrase["start"] : phrase["end"]] == phrase["text"]
    assert api.get("/v1/cases/e-1/explanation", headers=manager).json() == body
    with api.app.state.database.session() as session:
        assert session.scalar(select(func.count(CachedExplanation.id))) == 1


def test_scoring_answers_when_the_database_is_down(api):
    authorise(api)  # the key is now remembered by the key ring
    assert api.post("/v1/triage", json={"text": "warm-up"}).status_code == 200
    healthy = api.app.state.database
    api.app.state.database = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        response = api.post("/v1/triage", json={"text": "late fee", "case_id": "d-1"})
    finally:
        api.app.state.database = healthy
    assert response.status_code == 200
    body = response.json()
    assert body["recorded"] is False and body["case_id"] == "d-1"
    assert "OperationalError" in body["record_error"]
    assert body["escalation"]["probability"] >= 0


def test_complaint_text_never_reaches_info_logs(api, caplog):
    authorise(api)
    secret = "Zanzibar-unique-complaint-words"
    caplog.set_level(logging.INFO)
    api.post("/v1/triage", json={"text": f"{secret} were charged", "case_id": "log-1"})
    manager = _manager(api)
    outcome = {"escalated": True, "category": "fees", "lesson": f"{secret} lesson"}
    api.post("/v1/cases/log-1/outcome", json=outcome, headers=manager)
    api.get("/v1/cases/log-1/explanation", headers=manager)
    assert caplog.records, "the flow logs lifecycle events"
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert manager["Authorization"][7:] not in record.getMessage()


def test_outcomes_are_one_transaction_each(api):
    authorise(api)
    api.post("/v1/triage", json={"text": "late fee", "case_id": "t-1"})
    manager = _manager(api)
    outcome = {"escalated": True, "category": "fees"}
    for _ in range(3):
        api.post("/v1/cases/t-1/outcome", json=outcome, headers=manager)
    with api.app.state.database.session() as session:
        revisions = session.scalars(
            select(Outcome.revision).where(Outcome.case_id == "t-1")
        ).all()
    assert sorted(revisions) == [1, 2, 3]
