"""Faults the service must survive without losing what it stored: the database going away and
coming back, the process killed while outcomes are written, a broken bundle at startup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from serving.app import create_app
from serving.cases import get_case
from serving.db.engine import Database
from serving.settings import Settings
from tests.conftest import add_key, cli_key, free_port, postgres_database, wait_ready
from tests.faults import CuttableProxy


@pytest.fixture
def postgres_behind_proxy(postgres_admin):
    """A PostgreSQL database reached through a proxy the test can cut."""
    with postgres_database(postgres_admin) as direct:
        url = make_url(direct)
        proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(False), proxy
        proxy.close()


def test_scoring_survives_the_database_going_away_and_recording_resumes(
    postgres_behind_proxy, tiny_bundle, flagging_scorer, tmp_path
):
    url, proxy = postgres_behind_proxy
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path, database_url=url)
    with TestClient(create_app(settings, scorer=flagging_scorer)) as client:
        client.headers["Authorization"] = f"Bearer {add_key(client.app, 'manager')}"
        before = client.post("/v1/triage", json={"text": "late fee", "case_id": "f-1"})
        assert before.json()["recorded"] is True

        proxy.cut()
        during = client.post("/v1/triage", json={"text": "late fee", "case_id": "f-2"})
        assert during.status_code == 200
        assert during.json()["recorded"] is False and during.json()["record_error"]
        assert during.json()["escalation"]["probability"] >= 0
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["details"]["database"]["status"] == "degraded"
        assert client.get("/v1/cases/f-1").status_code == 503

        proxy.restore()
        after = client.post("/v1/triage", json={"text": "late fee", "case_id": "f-3"})
        assert after.json()["recorded"] is True
        assert client.get("/readyz").json()["details"]["database"]["status"] == "ok"
        assert client.get("/v1/cases/f-1").json()["case_id"] == "f-1"
        assert client.get("/v1/cases/f-2").status_code == 404


def _serve(env: dict, port: int, log: Path) -> subprocess.Popen:
    triage = Path(sys.executable).with_name("triage")
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(triage), "serve", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=handle,
        )


def test_outcomes_written_while_the_process_is_killed_are_whole_or_absent(
    database_url, tiny_bundle, tmp_path
):
    env = {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(tiny_bundle),
        "TRIAGE_DATA_DIR": str(tmp_path),
        "TRIAGE_DATABASE_URL": database_url,
        "TRIAGE_THREADS": "1",
    }
    headers = {"Authorization": f"Bearer {cli_key(env, 'manager', 'm')}"}
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = _serve(env, port, log)
    wait_ready(base, log)
    httpx.post(
        f"{base}/v1/triage",
        json={"text": "late fee", "case_id": "k-1"},
        headers=headers,
    )

    outcomes = {
        i: {
            "escalated": i % 2 == 0,
            "category": f"cat-{i}",
            "lesson": f"lesson {i} " * 20,
        }
        for i in range(200)
    }
    answered: dict[int, int] = {}

    def writer() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=5) as client:
            for i, body in outcomes.items():
                try:
                    response = client.post(
                        "/v1/cases/k-1/outcome",
                        json=body,
                        headers={"Idempotency-Key": f"o-{i}"},
                    )
                    answered[i] = response.status_code
                except httpx.TransportError:
                    return

    thread = threading.Thread(target=writer)
    thread.start()
    while len(answered) < 40 and thread.is_alive():
        thread.join(0.01)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    thread.join(timeout=30)
    assert 40 <= len(answered) < len(outcomes), "the kill must land mid-stream"
    assert set(answered.values()) == {201}

    database = Database(database_url)
    with database.session() as session:
        stored = {o.lesson: o for o in get_case(session, "k-1").outcomes}
    database.dispose()
    for i in answered:  # every answered write is there, whole
        row = stored[outcomes[i]["lesson"].strip()]
        assert (row.escalated, row.category) == (outcomes[i]["escalated"], f"cat-{i}")
    assert len(stored) in (
        len(answered),
        len(answered) + 1,
    )  # at most the one in flight

    # After a restart the client retries what it never heard back about: each is recorded
    # once, including the one that may have landed just before the kill.
    server = _serve(env, port, log)
    try:
        wait_ready(base, log)
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            for i, body in outcomes.items():
                if i not in answered:
                    response = client.post(
                        "/v1/cases/k-1/outcome",
                        json=body,
                        headers={"Idempotency-Key": f"o-{i}"},
                    )
                    assert response.status_code == 201, response.text
            retried = client.post(
                "/v1/cases/k-1/outcome",
                json=outcomes[0],
                headers={"Idempotency-Key": "o-0"},
            )
            assert retried.status_code == 201 and retried.json()["category"] == "cat-0"
            case = client.get("/v1/cases/k-1").json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lessons = [o["lesson"] for o in case["outcomes"]]
    assert sorted(lessons) == sorted(b["lesson"].strip() for b in outcomes.values())
    assert [o["revision"] for o in case["outcomes"]] == list(
        range(1, len(outcomes) + 1)
    )


def test_an_idempotency_key_reused_for_another_body_is_refused(
    tiny_bundle, flagging_scorer, tmp_path
):
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path)
    with TestClient(create_app(settings, scorer=flagging_scorer)) as client:
        client.headers["Authorization"] = f"Bearer {add_key(client.app, 'manager')}"
        first = client.post(
            "/v1/triage",
            json={"text": "late fee", "case_id": "i-1"},
            headers={"Idempotency-Key": "req-1"},
        )
        again = client.post(
            "/v1/triage",
            json={"text": "late fee", "case_id": "i-1"},
            headers={"Idempotency-Key": "req-1"},
        )
        assert first.json() == again.json()
        assert len(client.get("/v1/cases/i-1").json()["predictions"]) == 1
        other = client.post(
            "/v1/triage",
            json={"text": "another complaint", "case_id": "i-1"},
            headers={"Idempotency-Key": "req-1"},
        )
        assert other.status_code == 422 and "used for a different request" in other.text
        bad = client.post(
            "/v1/triage",
            json={"text": "x", "record": True},
            headers={"Idempotency-Key": "has space"},
        )
        assert bad.status_code == 422 and "visible ASCII" in bad.text


def test_a_corrupt_champion_at_startup_names_the_file(tiny_bundle, tmp_path):
    import shutil

    from triage.errors import BundleError

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    (copy / "tokenizer.json").write_text("{ not json")
    settings = Settings(model_dir=copy, data_dir=tmp_path)
    with (
        pytest.raises(BundleError, match="tokenizer.json"),
        TestClient(create_app(settings)),
    ):
        pass
