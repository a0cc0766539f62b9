"""The command line: help on every command, JSON from `score`, `Error: ...` on bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from triage_cli.main import app

runner = CliRunner()
COMMANDS = ["train", "export", "evaluate", "baseline", "score", "serve"]
COMMANDS += ["keys create", "keys list", "keys revoke", "keys local", "db upgrade"]
COMMANDS += ["retrain", "drift", "models list", "models show", "models register"]
COMMANDS += ["models promote", "models rollback", "models compare"]
COMMANDS += ["report", "digest", "batch-score"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example: triage " + command in " ".join(result.output.split())


def test_score_prints_a_prediction(tiny_bundle):
    result = runner.invoke(
        app,
        [
            "score",
            "They charged me twice",
            "-m",
            "company=Acme",
            "--model-dir",
            str(tiny_bundle),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["model_version"] == "tiny-test"
    assert 0 <= body["escalation"]["probability"] <= 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["score", "text", "-m", "novalue"], "--metadata takes KEY=VALUE"),
        (["score", "   "], "the complaint text is empty"),
        (["score", "text", "--model-dir", "/nonexistent"], "is not a directory"),
        (["export", "/nonexistent-run"], "has no best.pt"),
        (["evaluate", "/nonexistent"], "is not a directory"),
    ],
)
def test_user_errors_are_one_line(arguments, message):
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1
    assert "Error:" in result.output and message in " ".join(result.output.split())


def test_duplicate_metadata_keys_are_refused(tiny_bundle):
    result = runner.invoke(
        app,
        [
            "score",
            "text",
            "-m",
            "tags=a",
            "-m",
            "tags=b",
            "--model-dir",
            str(tiny_bundle),
        ],
    )
    assert result.exit_code == 1
    assert "--metadata tags given twice" in " ".join(result.output.split())


def test_bad_settings_name_the_environment_variable(tiny_bundle, monkeypatch):
    monkeypatch.setenv("TRIAGE_MODEL_DIR", str(tiny_bundle))
    monkeypatch.setenv("TRIAGE_ESCALATION_THRESHOLD", "1.5")
    result = runner.invoke(app, ["score", "text"])
    assert result.exit_code == 1
    assert (
        "TRIAGE_ESCALATION_THRESHOLD: Input should be less than or equal to 1"
        in " ".join(result.output.split())
    )


def test_serve_refuses_a_missing_bundle_in_one_line():
    result = runner.invoke(
        app, ["serve", "--model-dir", "/nonexistent", "--port", "8999"]
    )
    assert result.exit_code == 1
    assert "is not a directory" in result.output and "Traceback" not in result.output


def test_serve_refuses_an_impossible_port():
    result = runner.invoke(app, ["serve", "--port", "99999"])
    assert result.exit_code == 2


def test_training_commands_without_the_training_tools_say_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name.split(".")[0] == "datasets" or name == "training.data":
            raise ModuleNotFoundError(f"No module named '{name}'", name="datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    result = runner.invoke(app, ["baseline"])
    assert result.exit_code == 1
    assert "needs the training tools" in " ".join(result.output.split())


def test_keys_create_list_and_revoke(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    created = runner.invoke(
        app, ["keys", "create", "--role", "manager", "--name", "Dana"]
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("trg_")

    listed = runner.invoke(app, ["keys", "list"])
    assert "Dana" in listed.stdout and "manager" in listed.stdout
    assert key not in listed.stdout and key.split("_", 2)[2] not in listed.stdout

    assert runner.invoke(app, ["keys", "revoke", "1"]).exit_code == 0
    missing = runner.invoke(app, ["keys", "revoke", "99"])
    assert missing.exit_code == 1 and "no key with id 99" in missing.output


def test_keys_refuse_an_unknown_role(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["keys", "create", "--role", "boss", "--name", "x"])
    assert result.exit_code == 1
    assert "unknown role 'boss'; choose one of caller, manager, admin" in result.output


def test_local_key_is_created_once_and_private(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    first = runner.invoke(app, ["keys", "local"])
    assert first.exit_code == 0, first.output
    path = tmp_path / "local-admin.key"
    assert "Created a local admin key" in first.output and str(path) in first.output
    assert path.stat().st_mode & 0o777 == 0o600
    key = path.read_text()

    again = runner.invoke(app, ["keys", "local"])
    assert "Your local admin key is" in again.output and path.read_text() == key


def test_an_unreachable_database_is_one_line(monkeypatch):
    monkeypatch.setenv(
        "TRIAGE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none"
    )
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "Error: the cases database failed (OperationalError" in result.output
    assert "TRIAGE_DATABASE_URL" in result.output


def test_serve_refuses_an_unreachable_database_in_one_line(monkeypatch):
    monkeypatch.setenv(
        "TRIAGE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/x"
    )
    result = runner.invoke(app, ["serve", "--port", "8765"])
    assert result.exit_code == 1
    assert "Error: cannot reach the cases database (OperationalError" in result.output


def test_serve_on_ray_without_ray_says_how_to_install_it(tiny_bundle, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "serving.ray_serve", raising=False)
    result = runner.invoke(
        app, ["serve", "--ray", "--model-dir", str(tiny_bundle), "--port", "8999"]
    )
    assert result.exit_code == 1
    assert "this needs ray, which is not installed: install the ray extra" in " ".join(
        result.output.split()
    )
