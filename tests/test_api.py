"""The HTTP contract on the tiny bundle: shapes, order, limits and clear 4xx errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from tests.conftest import authorise


@pytest.fixture(scope="module")
def client(tiny_bundle, tiny_scorer, tmp_path_factory):
    settings = Settings(
        model_dir=tiny_bundle,
        data_dir=tmp_path_factory.mktemp("api"),
        max_text_chars=2_000,
        max_batch_items=5,
    )
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        authorise(client)
        yield client


def test_triage_returns_the_documented_shape(client):
    response = client.post(
        "/v1/triage", json={"text": "I was charged twice for one purchase."}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "escalation",
        "category",
        "model_version",
        "chunks",
        "ignored_metadata",
        "case_id",
        "recorded",
        "record_error",
    }
    assert body["recorded"] is False and body["case_id"] is None
    assert set(body["escalation"]) == {"probability", "flagged", "threshold"}
    assert set(body["category"]) == {"label", "probability", "top"}
    assert body["model_version"] == "tiny-test" and body["chunks"] == 1


def test_unknown_metadata_is_listed(client):
    body = client.post(
        "/v1/triage",
        json={
            "text": "late fee",
            "metadata": {"company": "Acme", "agent": "x", "n": 3},
        },
    ).json()
    assert body["ignored_metadata"] == ["agent", "n"]


def test_batch_keeps_order(client):
    texts = [
        "my card was stolen",
        "a debt collector keeps calling me",
        "mortgage escrow error",
    ]
    batch = client.post(
        "/v1/triage/batch", json={"items": [{"text": t} for t in texts]}
    )
    assert batch.status_code == 200, batch.text
    singles = [client.post("/v1/triage", json={"text": t}).json() for t in texts]
    for got, single in zip(batch.json()["results"], singles, strict=True):
        assert got["category"]["label"] == single["category"]["label"]
        assert got["escalation"]["probability"] == pytest.approx(
            single["escalation"]["probability"], abs=0.02
        )


def _messages(response) -> str:
    return " ".join(
        str(e.get("msg")) + " " + ".".join(map(str, e.get("loc", [])))
        for e in response.json()["detail"]
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": ""}, "text has nothing to read"),
        ({"text": "  \n "}, "text has nothing to read"),
        ({"text": "x" * 2_001}, "text has 2001 characters; at most 2000"),
        ({"text": 5}, "Input should be a valid string"),
        ({"text": ["a"]}, "Input should be a valid string"),
        ({}, "Field required"),
        ({"text": "ok", "colour": "red"}, "Extra inputs are not permitted"),
        ({"text": "ok", "metadata": {"company": {"nested": 1}}}, "metadata.company"),
        ({"text": "ok", "metadata": ["company"]}, "Input should be a valid dictionary"),
        (
            {"text": "ok", "metadata": {"company": "x" * 501}},
            "value has 501 characters; at most 500",
        ),
        (
            {"text": "ok", "metadata": {f"k{i}": 1 for i in range(33)}},
            "metadata has 33 keys; at most 32",
        ),
    ],
)
def test_bad_single_requests_get_422_with_a_reason(client, body, fragment):
    response = client.post("/v1/triage", json=body)
    assert response.status_code == 422, response.text
    assert fragment in _messages(response)


def test_malformed_json_is_a_422(client):
    response = client.post(
        "/v1/triage", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_an_invalid_item_rejects_the_batch_and_names_its_index(client):
    response = client.post(
        "/v1/triage/batch",
        json={"items": [{"text": "fine"}, {"text": "fine"}, {"text": " "}]},
    )
    assert response.status_code == 422
    assert "body.items.2.text" in _messages(response)

    response = client.post(
        "/v1/triage/batch", json={"items": [{"text": "fine"}, {"txt": "typo"}]}
    )
    assert response.status_code == 422
    assert "body.items.1" in _messages(response)


def test_batch_limits(client):
    too_many = client.post("/v1/triage/batch", json={"items": [{"text": "a"}] * 6})
    assert too_many.status_code == 422
    assert "batch has 6 items; at most 5" in _messages(too_many)

    empty = client.post("/v1/triage/batch", json={"items": []})
    assert empty.status_code == 422


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "tiny-test"
    assert ready.json()["details"]["categories"][0] == "credit_reporting"


def test_not_ready_before_the_model_loads(tiny_bundle):
    app = create_app(Settings(model_dir=tiny_bundle))
    client = TestClient(app)  # no lifespan: the model is never loaded
    assert client.get("/readyz").status_code == 503
    response = client.post("/v1/triage", json={"text": "hello"})
    assert response.status_code == 503
    assert "not loaded yet" in response.json()["detail"]


def test_lifespan_loads_the_bundle_from_settings(tiny_bundle):
    with TestClient(create_app(Settings(model_dir=tiny_bundle))) as client:
        assert client.get("/readyz").json()["model_version"] == "tiny-test"


def test_a_broken_bundle_stops_startup_with_its_path(tmp_path):
    from triage.errors import BundleError

    with (
        pytest.raises(BundleError, match="is not a directory"),
        TestClient(create_app(Settings(model_dir=tmp_path / "nope"))),
    ):
        pass


def test_category_only_bundle_returns_null_escalation(tiny_category_bundle):
    with TestClient(create_app(Settings(model_dir=tiny_category_bundle))) as client:
        authorise(client)
        body = client.post(
            "/v1/triage", json={"text": "My card was charged twice."}
        ).json()
    assert body["escalation"] is None
    assert body["category"]["label"]


NOT_UNICODE = "the request body is not valid Unicode JSON"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            b'{"text": "bad \\ud800 text"}',
            422,
            "text contains an unpaired surrogate (\\ud800) at character 4",
        ),
        (b'{"text": ["\\ud800"]}', 422, "Input should be a valid string"),
        (
            b'{"text": "ok", "metadata": {"company": "\\udfff"}}',
            422,
            "metadata value contains an unpaired surrogate",
        ),
        (
            b'{"text": "ok", "metadata": {"\\ud800": "x"}}',
            422,
            "a metadata key contains an unpaired surrogate",
        ),
        (b'{"text": "\xff\xfe invalid utf-8"}', 400, NOT_UNICODE),
    ],
)
def test_text_that_is_not_unicode_gets_a_4xx_that_says_so(
    client, body, status, fragment
):
    headers = {"content-type": "application/json"}
    response = client.post("/v1/triage", content=body, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert fragment in (detail if isinstance(detail, str) else _messages(response))
    assert client.get("/healthz").status_code == 200


def test_errors_do_not_echo_the_complaint(client):
    secret = "my card number is 4111 1111 1111 1111"
    response = client.post("/v1/triage", json={"text": secret, "colour": secret})
    assert response.status_code == 422
    assert "4111" not in response.text


@pytest.mark.parametrize(
    "text", ["\u200b", "\ufeff", "\u0000" * 10, "\u0001\u0002\u0003", " \t\u200b\n"]
)
def test_text_with_nothing_to_read_is_refused(client, text):
    response = client.post("/v1/triage", json={"text": text})
    assert response.status_code == 422
    assert "text has nothing to read" in _messages(response)


def test_emoji_and_right_to_left_text_are_scored(client):
    for text in ["🤬" * 20, "\u05d0\u05e0\u05d9 \u05db\u05d5\u05e2\u05e1", "..."]:
        assert client.post("/v1/triage", json={"text": text}).status_code == 200


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_metadata_numbers_are_refused(client, value):
    body = '{"text": "ok", "metadata": {"amount": ' + value + "}}"
    response = client.post(
        "/v1/triage", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_long_metadata_keys_are_refused(client):
    response = client.post("/v1/triage", json={"text": "ok", "metadata": {"k" * 65: 1}})
    assert response.status_code == 422
    assert "a metadata key has 65 characters; at most 64" in _messages(response)


def test_batch_character_budget(tiny_bundle, tiny_scorer):
    settings = Settings(model_dir=tiny_bundle, max_batch_chars=100)
    with TestClient(create_app(settings, scorer=tiny_scorer)) as small:
        authorise(small)
        response = small.post(
            "/v1/triage/batch", json={"items": [{"text": "x" * 60}, {"text": "y" * 60}]}
        )
    assert response.status_code == 422
    assert "batch holds 120 characters of text; at most 100" in _messages(response)


def test_a_body_that_is_not_json_says_which_content_type_to_send(client):
    response = client.post(
        "/v1/triage", content="hello", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    assert (
        "send the body as JSON with content-type: application/json (got 'text/plain')"
        in _messages(response)
    )
