"""The whole learning loop on a small, fast configuration: resolved cases -> retrain -> gate ->
promotion -> hot swap in the running server -> rollback; and a worse challenger refused."""

from __future__ import annotations

import csv
import gzip
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serving.app import create_app
from serving.auth import Principal, create_key
from serving.cases import (
    CaseRecord,
    OutcomeDraft,
    get_case,
    record_cases,
    record_outcome,
)
from serving.db.engine import Database
from serving.registry import champion, versions
from serving.settings import Settings
from tests.conftest import CFPB_2023, add_key, write_small_spec
from triage.datasets import load_spec
from triage.scorer import Complaint
from triage_cli.main import app as cli

SUPERVISOR = " I demanded a supervisor three times and they hung up on me every time."
CRYPTO = " Someone opened a crypto wallet in my name and drained my savings into it."
NEW_LABEL = "crypto_fraud"
runner = CliRunner()


def _real_rows(spec, n: int) -> list[dict]:
    mapping = spec.sources[0].category_map
    with gzip.open(CFPB_2023, "rt", newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["complaint_what_happened"].strip() and mapping.get(r["product"])
        ]
    return [
        {
            "text": r["complaint_what_happened"][:500],
            "category": mapping[r["product"]],
            "company": r["company"],
        }
        for r in rows[-n:]
    ]


def _learnable(rows: list[dict], invert_before: int = 0) -> list[dict]:
    """Escalated exactly when the supervisor sentence is there (inverted for the first
    `invert_before` rows); every fourth case is the new crypto-fraud category."""
    cases = []
    for i, row in enumerate(rows):
        cue = i % 2 == 0
        text, category = row["text"], row["category"]
        if i % 4 == 1:
            text, category = text + CRYPTO, NEW_LABEL
        if cue:
            text += SUPERVISOR
        escalated = cue if i >= invert_before else not cue
        cases.append(
            {**row, "text": text, "category": category, "escalated": escalated}
        )
    return cases


@pytest.fixture
def loop(tmp_path, tiny_bundle, monkeypatch):
    from training.tiny import write_tiny_base_model

    spec_path = write_small_spec(tmp_path / "base")
    base_model = write_tiny_base_model(tmp_path / "base-model")
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRIAGE_MODEL_DIR", str(tiny_bundle))
    arguments = [
        "retrain",
        *("--spec", str(spec_path), "--base-model", str(base_model)),
        *("--epochs", "3", "--batch-size", "32", "--threads", "1"),
        *("--case-weight", "2", "--min-category-examples", "10"),
        *("--min-holdout", "40", "--no-from-champion", "--by", "Dana Reyes"),
    ]
    return load_spec(spec_path), arguments, tmp_path / "var"


def _wait_for_version(client, version: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get("/readyz").json()["model_version"] == version:
            return
        time.sleep(0.2)
    pytest.fail(f"the server did not swap to {version}: {client.get('/readyz').json()}")


def test_outcomes_teach_a_challenger_that_is_promoted_swapped_in_and_rolled_back(
    loop, tiny_bundle
):
    spec, arguments, data_dir = loop
    settings = Settings(
        model_dir=tiny_bundle, data_dir=data_dir, registry_poll_seconds=0.2
    )
    with TestClient(create_app(settings)) as client:
        caller = {"Authorization": f"Bearer {add_key(client.app, 'caller')}"}
        manager = {"Authorization": f"Bearer {add_key(client.app, 'manager', 'Dana')}"}
        for i, case in enumerate(_learnable(_real_rows(spec, 200))):
            body = {"text": case["text"], "case_id": f"loop-{i:03d}"}
            body["metadata"] = {"company": case["company"]}
            assert client.post("/v1/triage", json=body, headers=caller).json()[
                "recorded"
            ]
            outcome = {"escalated": case["escalated"], "category": case["category"]}
            response = client.post(
                f"/v1/cases/loop-{i:03d}/outcome", json=outcome, headers=manager
            )
            assert response.status_code == 201

        result = runner.invoke(cli, arguments)
        assert result.exit_code == 0, result.output
        assert "Gate passed: promoted" in result.output
        assert f"new label '{NEW_LABEL}'" in result.output

        with client.app.state.database.session() as session:
            new_version = champion(session).version
            assert new_version != "tiny-test"
            assert {v.status for v in versions(session)} == {"champion", "retired"}
        _wait_for_version(client, new_version)

        crypto = {"text": "My bank let a stranger open a crypto wallet." + CRYPTO}
        answer = client.post("/v1/triage", json=crypto, headers=caller).json()
        assert answer["model_version"] == new_version
        assert answer["category"]["label"] == NEW_LABEL
        escalated = client.post(
            "/v1/triage",
            json={"text": "My card was declined." + SUPERVISOR},
            headers=caller,
        ).json()
        calm = client.post(
            "/v1/triage", json={"text": "My card was declined."}, headers=caller
        ).json()
        assert (
            escalated["escalation"]["probability"] > calm["escalation"]["probability"]
        )

        rolled = runner.invoke(cli, ["models", "rollback", "--by", "Dana Reyes"])
        assert rolled.exit_code == 0, rolled.output
        _wait_for_version(client, "tiny-test")
        again = client.post("/v1/triage", json=crypto, headers=caller).json()
        assert again["model_version"] == "tiny-test"
        assert again["category"]["label"] != NEW_LABEL


def test_the_gate_refuses_a_worse_challenger(loop, tiny_scorer):
    spec, arguments, data_dir = loop
    database = Database(f"sqlite:///{data_dir / 'triage.sqlite3'}")
    database.upgrade()
    with database.session() as session, session.begin():
        row, _ = create_key(session, "Dana", "manager")
        reviewer = Principal(row.id, row.name, row.role)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # The older cases teach the opposite of what the recent, held-out ones show.
    cases = _learnable(_real_rows(spec, 200), invert_before=160)
    with database.session() as session, session.begin():
        for i, case in enumerate(cases):
            [prediction] = tiny_scorer.score([Complaint(case["text"])])
            record = CaseRecord(f"old-{i:03d}", case["text"], None, prediction)
            [case_id] = record_cases(session, [record], None, None)
            stored = get_case(session, case_id)
            stored.created_at = start + timedelta(hours=i)
            draft = OutcomeDraft(case["escalated"], case["category"])
            record_outcome(session, stored, draft, reviewer)

    result = runner.invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "Gate refused" in result.output
    assert "escalation.pr_auc did not improve" in result.output
    with database.session() as session:
        assert champion(session).version == "tiny-test"
        statuses = {v.version: v.status for v in versions(session)}
    assert sorted(statuses.values()) == ["challenger", "champion"]
    database.dispose()
