"""Who may call what: every route is open, or needs a key of a role, or a signed-in manager."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from serving.app import create_app
from serving.settings import Settings
from tests.conftest import add_key

API_ROUTES = {
    ("POST", "/v1/triage"): "caller",
    ("POST", "/v1/triage/batch"): "caller",
    ("GET", "/v1/cases"): "manager",
    ("GET", "/v1/cases/{case_id}"): "manager",
    ("POST", "/v1/cases/{case_id}/outcome"): "manager",
    ("GET", "/v1/cases/{case_id}/explanation"): "manager",
    ("GET", "/v1/cases/{case_id}/similar"): "manager",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("GET", "/v1/models"): "admin",
    ("POST", "/v1/models/reload"): "admin",
}
PAGE_ROUTES = {
    ("GET", "/review"),
    ("GET", "/review/cases/{case_id}"),
    ("POST", "/review/cases/{case_id}/outcome"),
    ("GET", "/reports"),
    ("GET", "/reports/{table}.csv"),
    ("GET", "/reports/digest"),
    ("GET", "/reports/digest.md"),
}
OPEN_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/review/sign-in"),
    ("POST", "/review/sign-in"),
    ("POST", "/review/sign-out"),
}
BODIES = {
    "/v1/triage": {"text": "late fee", "case_id": "a-1"},
    "/v1/triage/batch": {"items": [{"text": "late fee"}]},
    "/v1/cases/{case_id}/outcome": {"escalated": True, "category": "fees"},
    "/v1/keys": {"name": "ops", "role": "caller"},
}
ROLES = ("caller", "manager", "admin")


@pytest.fixture(scope="module")
def client(tiny_bundle, tiny_scorer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("access")
    settings = Settings(model_dir=tiny_bundle, data_dir=folder)
    with TestClient(create_app(settings, scorer=tiny_scorer)) as client:
        keys = {role: add_key(client.app, role) for role in ROLES}
        scored = client.post(
            "/v1/triage",
            json=BODIES["/v1/triage"],
            headers={"Authorization": f"Bearer {keys['caller']}"},
        )
        assert scored.json()["recorded"]
        client.keys = keys
        yield client


def _call(client, method, path, key=None):
    url = path.replace("{case_id}", "a-1").replace("{key_id}", "999")
    url = url.replace("{table}", "lessons")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.request(
        method, url, json=BODIES.get(path), headers=headers, follow_redirects=False
    )


def _endpoints(routes) -> set[tuple[str, str]]:
    """(method, path) of every route, looking inside included routers."""
    seen = set()
    for route in routes:
        if isinstance(route, Mount):
            assert route.path == "/static"
        elif isinstance(route, APIRoute | Route):
            seen |= {(method, route.path) for method in route.methods - {"HEAD"}}
        else:
            seen |= _endpoints(route.original_router.routes)
    return seen


def test_every_route_is_classified(client):
    assert _endpoints(client.app.routes) == set(API_ROUTES) | PAGE_ROUTES | OPEN_ROUTES


@pytest.mark.parametrize(("method", "path"), sorted(API_ROUTES))
def test_no_key_is_401(client, method, path):
    response = _call(client, method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), sorted(API_ROUTES))
def test_a_wrong_key_is_401(client, method, path):
    assert _call(client, method, path, "trg_000000000000_forged").status_code == 401
    assert _call(client, method, path, "not-even-shaped-like-a-key").status_code == 401


@pytest.mark.parametrize(("method", "path"), sorted(API_ROUTES))
def test_roles_below_the_route_get_403_and_the_rest_pass(client, method, path):
    needed = ROLES.index(API_ROUTES[(method, path)])
    for rank, role in enumerate(ROLES):
        response = _call(client, method, path, client.keys[role])
        if rank < needed:
            assert response.status_code == 403, role
            assert f"this key's role is {role}" in response.json()["detail"]
        else:
            assert response.status_code not in (401, 403), (role, response.text)


@pytest.mark.parametrize(("method", "path"), sorted(PAGE_ROUTES))
def test_pages_without_a_session_go_to_sign_in(client, method, path):
    # A Bearer key is not a session: the page needs its own sign-in, then comes back.
    response = _call(client, method, path, client.keys["admin"])
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/review/sign-in?next=")
    wanted = path.replace("{case_id}", "a-1").replace("{table}", "lessons")
    assert unquote(location.split("next=", 1)[1]) == wanted


@pytest.mark.parametrize(
    ("method", "path"), sorted(r for r in OPEN_ROUTES if r[0] == "GET")
)
def test_open_pages_need_no_key(client, method, path):
    assert _call(client, method, path).status_code == 200


def test_sign_in_and_out_forms_need_their_csrf_token_not_a_key(client):
    # Posting without the form's token is refused whoever sends it (tested in
    # test_review.py with the token); signing out without a session just goes to sign-in.
    assert _call(client, "POST", "/review/sign-in").status_code == 403
    signed_out = _call(client, "POST", "/review/sign-out")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/review/sign-in"


def test_a_revoked_key_stops_working(client):
    admin = {"Authorization": f"Bearer {client.keys['admin']}"}
    created = client.post(
        "/v1/keys", json={"name": "temp", "role": "caller"}, headers=admin
    )
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["id"]
    assert _call(client, "POST", "/v1/triage", key).status_code == 200
    assert client.delete(f"/v1/keys/{key_id}", headers=admin).status_code == 200
    assert _call(client, "POST", "/v1/triage", key).status_code == 401
    listed = client.get("/v1/keys", headers=admin).json()
    assert all("key" not in row and "key_hash" not in row for row in listed)


def test_scoring_can_be_opened_by_configuration(tiny_bundle, tiny_scorer, tmp_path):
    settings = Settings(
        model_dir=tiny_bundle, data_dir=tmp_path, scoring_requires_key=False
    )
    with TestClient(create_app(settings, scorer=tiny_scorer)) as open_client:
        assert open_client.post("/v1/triage", json={"text": "fee"}).status_code == 200
        assert open_client.get("/v1/cases").status_code == 401


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(client):
    admin = {"Authorization": f"Bearer {client.keys['admin']}"}
    body = {"name": "slow", "role": "caller", "rate_limit_per_minute": 3}
    limited = client.post("/v1/keys", json=body, headers=admin).json()["key"]
    codes = [
        _call(client, "POST", "/v1/triage/batch", limited).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    refused = _call(client, "POST", "/v1/triage/batch", limited)
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert "over its rate limit" in refused.json()["detail"]

    body = {"name": "load test", "role": "caller", "rate_limit_per_minute": 0}
    unlimited = client.post("/v1/keys", json=body, headers=admin).json()["key"]
    codes = {
        _call(client, "POST", "/v1/triage/batch", unlimited).status_code
        for _ in range(60)
    }
    assert codes == {200}
