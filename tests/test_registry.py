"""The registry on both backends, the swap that keeps the old model when the new one is
broken, and shadow scoring."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from serving.app import create_app
from serving.db.models import ShadowPrediction
from serving.registry import (
    RegistryError,
    champion,
    ensure_champion,
    promote,
    register,
    rollback,
    terms,
)
from serving.settings import Settings
from tests.conftest import add_key
from triage.bundle import load_bundle, write_manifest
from triage_cli.main import app as cli


def _copy_as(bundle, folder, version):
    """A copy of `bundle` under another version name."""
    shutil.copytree(bundle, folder)
    manifest = load_bundle(folder).manifest
    manifest.version = version
    write_manifest(folder, manifest)
    return folder


def test_first_start_promote_rollback_and_history(database, tiny_bundle, tmp_path):
    with database.session() as session, session.begin():
        assert ensure_champion(session, tiny_bundle).version == "tiny-test"
    other = _copy_as(tiny_bundle, tmp_path / "b", "tiny-b")
    with database.session() as session, session.begin():
        row = register(session, other, by="ana", registry_dir=tmp_path / "registry")
        assert row.status == "challenger" and row.path.startswith(
            str(tmp_path / "registry")
        )
        promote(session, "tiny-b", by="ana")
    with database.session() as session, session.begin():
        assert champion(session).version == "tiny-b"
        assert rollback(session, by="ben").version == "tiny-test"
    with database.session() as session:
        history = [
            (t.version, t.reason, t.started_by, t.ended_at is None)
            for t in terms(session)
        ]
    assert history == [
        ("tiny-test", "first start", "first start", False),
        ("tiny-b", "promote", "ana", False),
        ("tiny-test", "rollback", "ben", True),
    ]


def test_registry_refusals(database, tiny_bundle, tmp_path):
    with database.session() as session, session.begin():
        ensure_champion(session, tiny_bundle)
        with pytest.raises(RegistryError, match="already registered"):
            register(session, tiny_bundle, by="x")
        with pytest.raises(RegistryError, match="no model version 'nope'"):
            promote(session, "nope", by="x")
        with pytest.raises(RegistryError, match="already the champion"):
            promote(session, "tiny-test", by="x")
        with pytest.raises(RegistryError, match="no earlier champion"):
            rollback(session, by="x")
        with pytest.raises(Exception, match="is not a directory"):
            register(session, tmp_path / "missing", by="x")


@pytest.fixture
def served(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_MODEL_DIR", str(tiny_bundle))
    settings = Settings(
        model_dir=tiny_bundle, data_dir=tmp_path, registry_poll_seconds=60
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {add_key(client.app, 'admin')}"
        yield client


def test_a_broken_new_champion_leaves_the_old_one_serving(
    served, tiny_bundle, tmp_path
):
    broken = _copy_as(tiny_bundle, tmp_path / "broken", "tiny-broken")
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "register", str(broken)]).exit_code == 0
    registered = tmp_path / "models" / "tiny-broken" / "model.onnx"
    registered.write_bytes(b"not an onnx graph")
    assert runner.invoke(cli, ["models", "promote", "tiny-broken"]).exit_code == 0

    reloaded = served.post("/v1/models/reload").json()
    assert (
        reloaded["changed"] is False
        and "tiny-broken was not swapped in" in reloaded["error"]
    )
    ready = served.get("/readyz").json()
    assert ready["model_version"] == "tiny-test"
    assert "tiny-broken" in ready["details"]["model_swaps"]["last_error"]
    assert served.post("/v1/triage", json={"text": "late fee"}).json()[
        "model_version"
    ] == ("tiny-test")


def test_reload_swaps_to_a_promoted_version(served, tiny_bundle, tmp_path):
    other = _copy_as(tiny_bundle, tmp_path / "next", "tiny-next")
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["models", "register", str(other), "--by", "ana"]).exit_code
        == 0
    )
    assert runner.invoke(cli, ["models", "promote", "tiny-next"]).exit_code == 0
    assert served.post("/v1/models/reload").json() == {
        "model_version": "tiny-next",
        "changed": True,
        "error": None,
    }
    assert served.post("/v1/triage", json={"text": "fee"}).json()["model_version"] == (
        "tiny-next"
    )
    listed = served.get("/v1/models").json()
    assert listed["serving"] == "tiny-next"
    assert [t["version"] for t in listed["history"]] == ["tiny-test", "tiny-next"]
    shown = runner.invoke(cli, ["models", "show", "tiny-next"])
    assert '"trained_by": "ana"' in shown.stdout


def test_shadow_scoring_stores_the_challengers_answers(
    tiny_bundle, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_MODEL_DIR", str(tiny_bundle))
    runner = CliRunner()
    challenger = _copy_as(tiny_bundle, tmp_path / "shadow", "tiny-shadow")
    listed = runner.invoke(cli, ["models", "list"])  # registers the first champion
    assert listed.exit_code == 0 and "tiny-test" in listed.stdout
    assert runner.invoke(cli, ["models", "register", str(challenger)]).exit_code == 0

    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path, shadow=True)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {add_key(client.app, 'admin')}"
        assert client.get("/readyz").json()["details"]["model_swaps"][
            "shadow_version"
        ] == ("tiny-shadow")
        for i in range(4):
            body = {"text": f"charged twice, call {i}", "case_id": f"s-{i}"}
            answer = client.post("/v1/triage", json=body).json()
            assert answer["model_version"] == "tiny-test"
        outcome = {"escalated": True, "category": "credit_card"}
        client.post("/v1/cases/s-0/outcome", json=outcome)
        client.post("/v1/cases/s-1/outcome", json={**outcome, "escalated": False})
        with client.app.state.database.session() as session:
            assert session.scalar(select(func.count(ShadowPrediction.id))) == 4

    compared = runner.invoke(cli, ["models", "compare"])
    assert compared.exit_code == 0, compared.output
    assert '"requests": 4' in compared.stdout
    assert '"category_agreement": 1.0' in compared.stdout  # the same weights agree
    assert '"cases": 2' in compared.stdout
