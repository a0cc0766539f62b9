"""`triage drift` against the champion's own training data: a shifted set of recent cases
raises alerts, a set drawn like the training data does not raise the length alert."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from serving.cases import CaseRecord, record_cases
from serving.db.engine import Database
from triage.bundle import load_bundle
from triage.scorer import Complaint
from triage_cli.main import app as cli

runner = CliRunner()


def _seed(data_dir, scorer, texts):
    database = Database(f"sqlite:///{data_dir / 'triage.sqlite3'}")
    database.upgrade()
    predictions = scorer.score([Complaint(t) for t in texts])
    with database.session() as session, session.begin():
        records = [
            CaseRecord(f"d-{i}", t, None, p)
            for i, (t, p) in enumerate(zip(texts, predictions, strict=True))
        ]
        record_cases(session, records, None, None)
    database.dispose()


def _drift(tmp_path, monkeypatch, tiny_bundle) -> dict:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_MODEL_DIR", str(tiny_bundle))
    output = tmp_path / "drift.json"
    result = runner.invoke(cli, ["drift", "--sample", "150", "--output", str(output)])
    assert result.exit_code == 0, result.output
    return json.loads(output.read_text())


def test_a_shifted_set_of_recent_cases_raises_alerts(
    tmp_path, monkeypatch, tiny_bundle, tiny_scorer
):
    texts = [f"Crypto wallet opened in my name, case {i}." for i in range(60)]
    _seed(tmp_path, tiny_scorer, texts)
    report = _drift(tmp_path, monkeypatch, tiny_bundle)
    assert report["recent_cases"] == 60 and report["training_sample"] == 150
    assert report["length"]["alert"] and report["length"]["recent_median_chars"] < 60
    assert report["embedding"]["domain_classifier_roc_auc"] > 0.9
    assert set(report["category"]["training"]) >= {"credit_reporting", "mortgage"}
    assert 0 <= report["escalation"]["training_rate"] <= 1
    assert "length" in report["alerts"] and "embedding" in report["alerts"]


def test_recent_cases_like_the_training_data_keep_the_length_alert_quiet(
    tmp_path, monkeypatch, tiny_bundle, tiny_scorer
):
    from training.drift import training_side

    spec = load_bundle(tiny_bundle).manifest.training["spec"]
    like = training_side(Path(spec), 80, seed=99).texts
    _seed(tmp_path, tiny_scorer, like)
    report = _drift(tmp_path, monkeypatch, tiny_bundle)
    assert report["length"]["alert"] is False
