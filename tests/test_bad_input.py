"""Every route against bad input: a 4xx that says what was wrong, or a correct answer; never
a 5xx; and the service keeps serving afterwards."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from tests.bad_inputs import bad_inputs


@pytest.fixture(scope="module")
def client(tiny_bundle, tiny_scorer, tmp_path_factory):
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path_factory.mktemp("bad"))
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        with client.app.state.database.session() as session, session.begin():
            from serving.auth import create_key

            _, key = create_key(session, "fuzz", "admin", rate_limit=0)
        client.headers["Authorization"] = f"Bearer {key}"
        client.post("/v1/triage", json={"text": "late fee", "case_id": "bad-1"})
        yield client


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs"),
    bad_inputs(),
    ids=[entry[0] for entry in bad_inputs()],
)
def test_bad_input_gets_a_4xx_with_a_reason_or_a_correct_answer(
    client, name, method, path, kwargs
):
    response = client.request(method, path, follow_redirects=False, **kwargs)
    assert response.status_code < 500, (name, response.status_code, response.text[:300])
    if 400 <= response.status_code < 500 and "json" in response.headers.get(
        "content-type", ""
    ):
        detail = response.json()["detail"]
        assert detail, name
        assert "a" * 1000 not in response.text, "the error must not echo the input"
    assert client.get("/healthz").status_code == 200


def test_the_service_still_scores_after_the_table(client):
    for entry in bad_inputs()[:5]:
        client.request(entry[1], entry[2], **entry[3])
    response = client.post("/v1/triage", json={"text": "I was charged twice."})
    assert response.status_code == 200 and response.json()["category"]["label"]


def test_a_huge_body_is_refused_before_it_is_read_even_without_a_key(client):
    huge = b'{"text": "' + b" " * (9 * 1024 * 1024) + b'"}'
    response = client.post(
        "/v1/triage",
        content=huge,
        headers={"Authorization": "", "content-type": "application/json"},
    )
    assert response.status_code == 413 and "TRIAGE_MAX_BODY_BYTES" in response.text

    def chunks():
        for _ in range(10):
            yield b" " * (1024 * 1024)

    streamed = client.post(
        "/v1/triage", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_nul_is_refused_alike_on_every_backend(client):
    response = client.post("/v1/triage", json={"text": "fee \x00", "case_id": "n-1"})
    assert response.status_code == 422 and "NUL character" in response.text
    assert client.get("/v1/cases/n-1").status_code == 404
