"""Dataset recipes: the public sets' official splits, any file mapped on the command line, and
an error for every kind of bad input that names the file, the column, what was found and the
flag that fixes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import REPO
from triage.data import read_dataset
from triage.datasets import load_spec, spec_for_file
from triage.errors import DatasetSpecError
from triage_cli.main import app

SPECS = REPO / "data" / "specs"
runner = CliRunner()


def _complaints(rows: int = 60) -> pd.DataFrame:
    """A small call-center export: free text, a reason, an outcome, a date and a team."""
    reasons = ["billing", "delivery", "refund"]
    return pd.DataFrame(
        {
            "ticket": [f"t{i}" for i in range(rows)],
            "body": [
                f"my {reasons[i % 3]} problem number {i} is still not fixed"
                for i in range(rows)
            ],
            "reason": [reasons[i % 3] for i in range(rows)],
            "escalated": ["yes" if i % 4 == 0 else "no" for i in range(rows)],
            "received": [f"2026-01-{1 + i % 28:02d}" for i in range(rows)],
            "team": ["north" if i % 2 else "south" for i in range(rows)],
        }
    )


def test_banking77_keeps_the_official_test_split_whole():
    data = read_dataset(load_spec(SPECS / "banking77.toml"))
    assert len(data.categories) == 77
    assert len(data.parts["test"]) == 3080
    assert len(data.parts["train"]) + len(data.parts["validation"]) == 10003
    assert 0.08 < len(data.parts["validation"]) / 10003 < 0.12
    assert {r["source"] for r in data.parts["test"]} == {"test.csv"}
    assert {r["source"] for r in data.parts["validation"]} == {"train.csv"}
    assert not data.spec.has_escalation


def test_banking77_validation_is_the_same_every_time():
    first = read_dataset(load_spec(SPECS / "banking77.toml"))
    again = read_dataset(load_spec(SPECS / "banking77.toml"))
    assert [r["id"] for r in first.parts["validation"]] == [
        r["id"] for r in again.parts["validation"]
    ]


def test_multidogo_uses_the_papers_split_over_all_six_domains():
    data = read_dataset(load_spec(SPECS / "multidogo.toml"))
    sizes = {split: len(rows) for split, rows in data.parts.items()}
    # The paper's turn-level split, less empty turns and turns with several intents.
    assert sizes == {"train": 81409, "validation": 11553, "test": 23277}
    domains = {r["metadata"]["domain"] for r in data.parts["test"]}
    assert domains == {
        "airline",
        "fastfood",
        "finance",
        "insurance",
        "media",
        "software",
    }
    assert len(data.categories) == 50
    assert not any("<div>" in c for c in data.categories)


def test_cfpb_recipe_maps_both_eras_into_one_product_taxonomy():
    data = read_dataset(load_spec(SPECS / "cfpb.toml"))
    old_era = [
        r for r in data.parts["train"] if r["source"].startswith("narratives_2015")
    ]
    assert len(old_era) > 3900
    assert all(r["escalation"] == -1 and r["category"] >= 0 for r in old_era)
    assert not any(
        r["source"].startswith("narratives_2015")
        for split in ("validation", "test")
        for r in data.parts[split]
    )
    assert len(data.categories) == 7


def test_a_csv_mapped_on_the_command_line(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    spec = spec_for_file(
        path,
        text_column="body",
        category_column="reason",
        escalation_column="escalated",
        time_column="received",
        metadata_columns=["team"],
    )
    data = read_dataset(spec)
    assert data.categories == ["billing", "delivery", "refund"]
    assert sum(len(rows) for rows in data.parts.values()) == 60
    assert data.parts["train"][-1]["time"] <= data.parts["test"][0]["time"]
    assert {r["escalation"] for r in data.parts["train"]} == {0, 1}
    assert data.parts["test"][0]["metadata"]["team"] in ("north", "south")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_files_with_a_random_split(tmp_path: Path, suffix: str):
    frame = _complaints(200)
    path = tmp_path / f"complaints{suffix}"
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    data = read_dataset(
        spec_for_file(path, text_column="body", category_column="reason")
    )
    sizes = {split: len(rows) for split, rows in data.parts.items()}
    assert sum(sizes.values()) == 200 and min(sizes.values()) > 10


def test_a_files_own_split_column(tmp_path: Path):
    frame = _complaints(30).assign(part=["train", "dev", "test"] * 10)
    path = tmp_path / "complaints.csv.gz"
    frame.to_csv(path, index=False)
    data = read_dataset(
        spec_for_file(
            path, text_column="body", category_column="reason", split_column="part"
        )
    )
    assert {s: len(r) for s, r in data.parts.items()} == {
        "train": 10,
        "validation": 10,
        "test": 10,
    }


def _error(spec) -> str:
    with pytest.raises(DatasetSpecError) as caught:
        read_dataset(spec)
    return str(caught.value)


def test_missing_column_names_the_file_the_column_what_was_found_and_the_flag(
    tmp_path: Path,
):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    message = _error(spec_for_file(path, text_column="text", category_column="reason"))
    assert message == (
        "complaints.csv: no column 'text' for text_column; map it with --text-column body "
        "(or text_column in the spec). The file has the columns: ticket, body, reason, "
        "escalated, received, team"
    )


def test_missing_category_column_suggests_a_close_name(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    message = _error(spec_for_file(path, text_column="body", category_column="reasons"))
    assert re.escape("map it with --category-column reason") in re.escape(message)


def test_text_of_the_wrong_type(tmp_path: Path):
    path = tmp_path / "complaints.jsonl"
    path.write_text(
        "\n".join(json.dumps({"body": i, "reason": "billing"}) for i in range(5))
    )
    message = _error(spec_for_file(path, text_column="body", category_column="reason"))
    assert message == (
        "complaints.jsonl: column 'body' (text_column) holds int values such as 0; "
        "expected text. Map a text column with --text-column (or text_column in the spec)"
    )


def test_nested_values_are_the_wrong_type(tmp_path: Path):
    path = tmp_path / "complaints.jsonl"
    path.write_text(json.dumps({"body": "late", "reason": ["a", "b"]}) + "\n")
    message = _error(spec_for_file(path, text_column="body", category_column="reason"))
    assert "column 'reason' (category_column) holds list values" in message
    assert "--category-column" in message


@pytest.mark.parametrize("content", ["", "body,reason\n"])
def test_empty_files(tmp_path: Path, content: str):
    path = tmp_path / "complaints.csv"
    path.write_text(content)
    message = _error(spec_for_file(path, text_column="body", category_column="reason"))
    assert message.startswith("complaints.csv ")
    assert ("is empty" in message) if not content else ("but no rows" in message)


def test_unknown_label_in_a_category_map(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    spec = load_spec(SPECS / "banking77.toml")
    source = spec.sources[0].model_copy(
        update={
            "path": str(path),
            "text_column": "body",
            "category_column": "reason",
            "category_map": {"billing": "charges", "delivery": "shipping"},
        }
    )
    message = _error(spec.model_copy(update={"sources": [source]}))
    assert message == (
        f"{path}: reason value(s) missing from category_map: 'refund' (20). "
        'Map each to a label, or to "" to drop those rows.'
    )


def test_label_outside_the_specs_categories(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    spec = spec_for_file(path, text_column="body", category_column="reason")
    message = _error(spec.model_copy(update={"categories": ["billing", "delivery"]}))
    assert message == (
        "complaints.csv: label 'refund' is not in the spec's categories list "
        "(billing, delivery); add it there, or map it with category_map"
    )


def test_unknown_escalation_value(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().assign(escalated="maybe").to_csv(path, index=False)
    message = _error(
        spec_for_file(path, text_column="body", escalation_column="escalated")
    )
    assert "escalated value 'maybe' is in none of positive, negative or unlabelled" in (
        message
    )
    assert "--escalation-column: 1/true/yes, 0/false/no, or empty" in message


def test_unknown_split_value(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints(4).assign(part=["train", "holdout", "test", "train"]).to_csv(
        path, index=False
    )
    message = _error(
        spec_for_file(
            path, text_column="body", category_column="reason", split_column="part"
        )
    )
    assert "part value(s) 'holdout' (1) are not in split_values" in message


def test_unknown_file_format(tmp_path: Path):
    with pytest.raises(DatasetSpecError, match=re.escape("or pass --format csv")):
        spec_for_file(tmp_path / "complaints.xlsx", text_column="body")


def test_cli_baseline_on_a_mapped_file(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints(300).to_csv(path, index=False)
    output = tmp_path / "baseline.json"
    result = runner.invoke(
        app,
        [
            "baseline",
            "--data",
            str(path),
            "--text-column",
            "body",
            "--category-column",
            "reason",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    assert report["dataset"] == "complaints"
    assert report["baseline"]["category"]["accuracy"] > 0.9


def test_cli_names_the_flag_for_a_missing_column(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    result = runner.invoke(
        app, ["baseline", "--data", str(path), "--category-column", "reason"]
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "no column 'text' for text_column; map it with --text-column body" in output
    assert "Traceback" not in output


def test_cli_train_refuses_a_bad_file_before_writing_a_run(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    path.write_text("")
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", "--data", str(path), "--category-column", "reason"]
        + ["--output", str(run)],
    )
    assert result.exit_code == 1
    assert "complaints.csv is empty" in " ".join(result.output.split())
    assert not run.exists()


def test_cli_needs_a_label_and_one_source_of_data(tmp_path: Path):
    result = runner.invoke(app, ["baseline", "--data", str(tmp_path / "x.csv")])
    assert result.exit_code == 1
    assert "--category-column or --escalation-column" in result.output
    result = runner.invoke(
        app,
        ["baseline", "--spec", "a.toml", "--data", "x.csv", "--category-column", "r"],
    )
    assert "pass either --spec or --data, not both" in result.output


def test_cli_evaluate_refuses_labels_the_bundle_does_not_know(
    tiny_category_bundle: Path, tmp_path: Path
):
    path = tmp_path / "complaints.csv"
    _complaints(90).to_csv(path, index=False)
    result = runner.invoke(
        app,
        ["evaluate", str(tiny_category_bundle), "--data", str(path)]
        + ["--text-column", "body", "--category-column", "reason"],
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert (
        "complaints: labels billing, delivery, refund are not among the bundle's categories"
        in output
    )


def test_every_command_that_reads_data_offers_the_same_data_flags():
    import typer.main

    command = typer.main.get_command(app)
    context = command.make_context("triage", ["--help"], resilient_parsing=True)
    panels = {}
    for name in ("train", "evaluate", "baseline"):
        params = command.get_command(context, name).params
        panels[name] = [p.name for p in params if p.rich_help_panel == "Data"]

    assert panels["train"] == panels["evaluate"] == panels["baseline"]
    assert panels["train"][:3] == ["spec", "data", "text_column"]
    assert len(panels["train"]) == 10


def test_cli_refuses_column_flags_without_a_data_file():
    result = runner.invoke(
        app, ["baseline", "--text-column", "body", "--format", "csv"]
    )

    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "--text-column, --format name the columns of a --data file" in output


def test_cli_baseline_names_a_label_with_a_single_value(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    frame = _complaints(120)
    frame["reason"] = "billing"
    frame.to_csv(path, index=False)

    result = runner.invoke(
        app,
        ["baseline", "--data", str(path), "--text-column", "body"]
        + ["--category-column", "reason"],
    )

    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "the training split's category labels hold one value only" in output


def test_cli_train_refuses_a_bad_window_before_writing_a_run(tmp_path: Path):
    path = tmp_path / "complaints.csv"
    _complaints().to_csv(path, index=False)
    run = tmp_path / "run"

    result = runner.invoke(
        app,
        ["train", "--data", str(path), "--text-column", "body"]
        + ["--category-column", "reason", "--output", str(run), "--max-tokens", "48"],
    )

    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "chunk_overlap must be between 0 and 5 for max_tokens 48, got 32" in output
    assert not run.exists()
