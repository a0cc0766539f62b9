"""The command line: help on every command, JSON from `score`, `Error: ...` on bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from triage_cli.main import app

runner = CliRunner()
COMMANDS = ["train", "export", "evaluate", "baseline", "score", "serve"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
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
