"""End to end on the committed default bundle and real CFPB complaints.

These keep the committed numbers honest: the manifest's test-split metrics are recomputed from
the bundle and the data in the repo, and the real server is started and asked over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEFAULT_BUNDLE, REPO, cli_key, free_port, wait_ready
from triage.bundle import load_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def cfpb():
    from training.data import load_dataset
    from triage.datasets import load_spec

    return load_dataset(load_spec(REPO / "data" / "specs" / "cfpb.toml"))


def test_bundle_is_small_int8_and_gated(bundle):
    size = sum(f.stat().st_size for f in Path(bundle.path).iterdir())
    assert size <= 40 * 2**20
    assert bundle.manifest.quantization == "int8-dynamic"
    assert bundle.manifest.gate["passed"] and bundle.manifest.gate["enforced"]
    assert (
        (bundle.path / "MODEL_CARD.md")
        .read_text()
        .startswith(f"# Model card: {bundle.version}")
    )


def _pairs(metrics: dict, prefix: str = ""):
    for head in ("escalation", "category"):
        for key in (
            "roc_auc",
            "pr_auc",
            "recall_at_10pct",
            "recall_at_20pct",
            "ece",
            "macro_f1",
            "accuracy",
        ):
            if key in metrics.get(head, {}):
                yield f"{prefix}{head}.{key}", metrics[head][key]
    within = metrics.get("escalation_within_company", {}).get("mean_roc_auc")
    if within is not None:
        yield f"{prefix}escalation_within_company", within


def test_manifest_metrics_are_reproduced_from_the_repo(bundle, cfpb):
    from training.evaluate import evaluate_bundle

    assert bundle.manifest.dataset["fingerprint"] == cfpb.fingerprint, (
        "the data changed since export"
    )
    report = evaluate_bundle(bundle, cfpb, baseline=False)
    stored = bundle.manifest.metrics["model"]
    expected = dict(_pairs(stored)) | dict(_pairs(stored["text_only"], "text_only."))
    measured = dict(_pairs(report["model"])) | dict(
        _pairs(report["model"]["text_only"], "text_only.")
    )
    # Metrics added since the export (the category head's ECE) are measured, not stored.
    assert expected.keys() <= measured.keys() and len(expected) >= 10
    for name, value in expected.items():
        assert measured[name] == pytest.approx(value, abs=0.01), name


def test_model_beats_chance_by_a_margin_on_real_complaints(bundle):
    model = bundle.manifest.metrics["model"]
    assert model["escalation"]["roc_auc"] > 0.7
    assert model["category"]["macro_f1"] > 0.6


def test_the_real_server_scores_a_real_complaint_without_torch(bundle, cfpb, tmp_path):
    port = free_port()
    triage = Path(sys.executable).with_name("triage")
    env = {**os.environ, "TRIAGE_DATA_DIR": str(tmp_path)}
    key = cli_key(env, "caller", "e2e")
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(triage), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", tmp_path / "server.log")

        row = cfpb.splits["test"][0]
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/triage",
            json={"text": row["text"], "case_id": "e2e-1"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == bundle.version
        assert 0 < body["escalation"]["probability"] < 1
        assert body["category"]["label"] in bundle.manifest.categories
        assert body["recorded"] is True and body["case_id"] == "e2e-1"

        maps = Path(f"/proc/{server.pid}/maps").read_text()
        assert "libtorch" not in maps and "torch/lib" not in maps
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_score_command_on_the_default_bundle():
    triage = Path(sys.executable).with_name("triage")
    text = "I paid off my mortgage but the servicer still reports it as delinquent and charges escrow."
    done = subprocess.run(
        [str(triage), "score", text], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["category"]["label"] == "mortgage"
