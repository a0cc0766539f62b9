"""Similar resolved cases: the API, the review page's panel, persisted embeddings, and the
index following the serving model version."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from serving import similar as similar_module
from serving.app import create_app
from serving.db.models import CaseEmbedding
from serving.settings import Settings
from tests.conftest import CFPB_2023, DEFAULT_BUNDLE, add_key
from tests.test_review import sign_in
from triage.scorer import Scorer

HOSTILE_LESSON = "<script>alert('x')</script> refund first"


def _headers(app, role):
    return {"Authorization": f"Bearer {add_key(app, role)}"}


def _store(client, caller, cases: dict[str, str]) -> None:
    for case_id, text in cases.items():
        body = {"text": text, "case_id": case_id}
        assert client.post("/v1/triage", json=body, headers=caller).json()["recorded"]


def _resolve(client, manager, case_id, **outcome) -> None:
    body = {"escalated": True, "category": "billing", "lesson": "", **outcome}
    response = client.post(f"/v1/cases/{case_id}/outcome", json=body, headers=manager)
    assert response.status_code == 201, response.text


@pytest.fixture
def service(database_url, tiny_bundle, tiny_scorer):
    settings = Settings(model_dir=tiny_bundle, database_url=database_url)
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        client.caller = _headers(client.app, "caller")
        client.manager = _headers(client.app, "manager")
        yield client


@pytest.fixture
def texts(real_complaints):
    return {f"s-{i}": text for i, text in enumerate(real_complaints[:8])}


def _embedded(client, version=None) -> int:
    statement = select(func.count(CaseEmbedding.id))
    if version:
        statement = statement.where(CaseEmbedding.model_version == version)
    with client.app.state.database.session() as session:
        return session.scalar(statement)


def test_only_resolved_cases_come_back_best_first(service, texts):
    _store(service, service.caller, texts)
    for case_id in ["s-1", "s-2", "s-3", "s-4", "s-5"]:
        _resolve(service, service.manager, case_id, lesson=f"lesson of {case_id}")

    response = service.get("/v1/cases/s-0/similar", headers=service.manager)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "tiny-test" and body["searched"] == 5
    ids = [item["case_id"] for item in body["items"]]
    assert set(ids) == {"s-1", "s-2", "s-3", "s-4", "s-5"}
    similarities = [item["similarity"] for item in body["items"]]
    assert similarities == sorted(similarities, reverse=True)
    first = body["items"][0]
    assert first["lesson"] == f"lesson of {first['case_id']}" and first["escalated"]

    # A resolved case is not its own neighbour, and `limit` bounds the answer.
    limited = service.get(
        "/v1/cases/s-1/similar", params={"limit": 2}, headers=service.manager
    ).json()
    assert len(limited["items"]) == 2 and "s-1" not in {
        i["case_id"] for i in limited["items"]
    }
    # Five resolved cases and the open one asked about, each embedded once.
    assert _embedded(service) == 6
    unknown = service.get("/v1/cases/none/similar", headers=service.manager)
    assert unknown.status_code == 404 and "no case 'none'" in unknown.text
    too_many = service.get(
        "/v1/cases/s-0/similar", params={"limit": 21}, headers=service.manager
    )
    assert too_many.status_code == 422


def test_the_index_follows_outcomes_and_text_changes(service, texts, monkeypatch):
    _store(service, service.caller, texts)
    _resolve(service, service.manager, "s-1")
    first = service.get("/v1/cases/s-0/similar", headers=service.manager).json()
    assert [i["case_id"] for i in first["items"]] == ["s-1"]

    embedded = []
    real_embed = similar_module.embed
    monkeypatch.setattr(
        similar_module,
        "embed",
        lambda scorer, batch: embedded.extend(batch) or real_embed(scorer, batch),
    )
    _resolve(service, service.manager, "s-2")
    second = service.get("/v1/cases/s-0/similar", headers=service.manager).json()
    assert second["searched"] == 2 and embedded == [texts["s-2"]]

    # Scoring a resolved case again with new text embeds it again, and only it.
    _store(
        service, service.caller, {"s-1": "A brand new text about a mortgage escrow."}
    )
    service.get("/v1/cases/s-0/similar", headers=service.manager)
    assert embedded == [texts["s-2"], "A brand new text about a mortgage escrow."]
    assert _embedded(service) == 3


def test_a_restart_reuses_stored_embeddings(
    database_url, tiny_bundle, tiny_scorer, texts, monkeypatch
):
    settings = Settings(model_dir=tiny_bundle, database_url=database_url)
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        caller, manager = (
            _headers(client.app, "caller"),
            _headers(client.app, "manager"),
        )
        _store(client, caller, texts)
        for case_id in texts:
            _resolve(client, manager, case_id)
        before = client.get("/v1/cases/s-0/similar", headers=manager).json()

    calls = []
    monkeypatch.setattr(similar_module, "embed", lambda *a: calls.append(a))
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        manager = _headers(client.app, "manager")
        after = client.get("/v1/cases/s-0/similar", headers=manager).json()
    assert calls == [] and after == before


def test_a_new_model_version_gets_its_own_index(service, texts, tiny_bundle, tmp_path):
    _store(service, service.caller, texts)
    for case_id in ["s-1", "s-2", "s-3"]:
        _resolve(service, service.manager, case_id)
    service.get("/v1/cases/s-0/similar", headers=service.manager)
    assert _embedded(service, "tiny-test") == 4

    swapped = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, swapped)
    manifest = json.loads((swapped / "manifest.json").read_text())
    manifest["version"] = "tiny-test-2"
    (swapped / "manifest.json").write_text(json.dumps(manifest))
    service.app.state.scorer = Scorer(swapped, threads=1)

    body = service.get("/v1/cases/s-0/similar", headers=service.manager).json()
    assert body["model_version"] == "tiny-test-2" and body["searched"] == 3
    assert _embedded(service, "tiny-test-2") == 4 and _embedded(service) == 8


def test_embedding_stops_at_the_time_budget_and_carries_on(service, texts):
    _store(service, service.caller, texts)
    for case_id in list(texts)[1:]:
        _resolve(service, service.manager, case_id)
    service.app.state.settings.similar_seconds = 1e-9
    first = service.get("/v1/cases/s-0/similar", headers=service.manager).json()
    assert first["pending"] == 7 and first["searched"] == 0 and first["items"] == []
    sign_in(service)
    page = service.get("/review/cases/s-0").text
    assert "7 resolved cases are still being indexed for this model" in page

    service.app.state.settings.similar_seconds = 60
    second = service.get("/v1/cases/s-0/similar", headers=service.manager).json()
    assert second["pending"] == 0 and second["searched"] == 7
    assert len(second["items"]) == 5


def test_the_case_view_shows_similar_cases_inert(service, texts, caplog):
    caplog.set_level(logging.INFO)
    _store(service, service.caller, texts)
    _resolve(
        service,
        service.manager,
        "s-1",
        lesson=HOSTILE_LESSON,
        resolution="Refunded the duplicate",
    )
    sign_in(service)
    page = service.get("/review/cases/s-0").text
    assert "Similar resolved cases" in page and 'href="/review/cases/s-1"' in page
    assert "Refunded the duplicate" in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; refund first" in page
    lonely = service.get("/review/cases/s-1").text
    assert "No resolved case to compare with yet." in lonely
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "building the similar-cases index for model tiny-test" in logged
    assert "refund first" not in logged and texts["s-0"][:40] not in logged


def test_the_panel_can_be_switched_off(database_url, tiny_bundle, tiny_scorer, texts):
    settings = Settings(
        model_dir=tiny_bundle, database_url=database_url, similar_cases=0
    )
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        _store(client, _headers(client.app, "caller"), texts)
        sign_in(client)
        assert "Similar resolved cases" not in client.get("/review/cases/s-0").text


DOUBLE_CHARGE = (
    "I bought a laptop with my credit card and the store charged me twice for the same "
    "purchase. Two identical charges are on my statement and the bank refuses to reverse "
    "the duplicate charge."
)


def _cfpb_kinds() -> dict[str, list[str]]:
    """Real CFPB narratives of three kinds: double charges, mortgage escrow, collection
    calls."""
    frame = pd.read_csv(CFPB_2023, dtype=str, keep_default_na=False)
    text = frame["complaint_what_happened"]
    double = text.str.contains(
        "charged twice|double charge|double-charge|duplicate charge|charged me twice",
        case=False,
    )
    escrow = (frame["product"] == "Mortgage") & text.str.contains("escrow", case=False)
    calls = (frame["product"] == "Debt collection") & (
        frame["sub_issue"] == "Frequent or repeated calls"
    )
    return {
        "double": text[double].tolist(),
        "escrow": text[escrow].head(8).tolist(),
        "calls": text[calls].head(8).tolist(),
    }


@pytest.mark.slow
def test_a_double_charge_finds_the_resolved_double_charges_first(tmp_path):
    kinds = _cfpb_kinds()
    assert (
        len(kinds["double"]) >= 4 and len(kinds["escrow"]) == len(kinds["calls"]) == 8
    )
    # The whole index is built in the first request: on a loaded machine, embedding 21 long
    # narratives can take longer than the default budget (the budget has its own test).
    settings = Settings(model_dir=DEFAULT_BUNDLE, data_dir=tmp_path, similar_seconds=60)
    with TestClient(create_app(settings, scorer=Scorer(DEFAULT_BUNDLE))) as client:
        caller = _headers(client.app, "caller")
        manager = _headers(client.app, "manager")
        resolved = {
            f"{kind}-{i}": text
            for kind, texts in kinds.items()
            for i, text in enumerate(texts)
        }
        _store(client, caller, {**resolved, "new-call": DOUBLE_CHARGE})
        for case_id in resolved:
            kind = case_id.split("-")[0]
            _resolve(client, manager, case_id, category=kind, lesson=f"{kind} lesson")

        body = client.get(
            "/v1/cases/new-call/similar", params={"limit": 5}, headers=manager
        ).json()
        assert body["searched"] == len(resolved)
        kinds_found = [item["case_id"].split("-")[0] for item in body["items"]]
        assert kinds_found[:3] == ["double"] * 3, body["items"]
        assert body["items"][0]["lesson"] == "double lesson"

        sign_in(client)
        page = client.get("/review/cases/new-call").text
        panel = page.split("Similar resolved cases")[1].split("</ol>")[0]
        shown = re.findall(r'href="/review/cases/([a-z]+)-\d+"', panel)
        assert shown[:3] == ["double"] * 3 and len(shown) == 5
