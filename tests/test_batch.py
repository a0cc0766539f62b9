"""Batch scoring of archives without Ray: columns checked up front, every format read alike,
predictions equal to the scorer's, and a printed note when Ray is not there."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch import run
from batch.archive import ArchiveError
from batch.run import score_archive
from tests.conftest import CFPB_2023
from triage.scorer import Complaint

TEXT, ID = "complaint_what_happened", "complaint_id"
KEYS = ("company", "state", "tags")


@pytest.fixture(scope="module")
def complaints() -> pd.DataFrame:
    frame = pd.read_csv(CFPB_2023, dtype=str, keep_default_na=False).head(60)
    return frame[[ID, TEXT, "company", "state", "tags", "product"]]


def _write(frame: pd.DataFrame, path) -> None:
    if path.name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif ".jsonl" in path.name:
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)


def _local(archive, output, bundle, **options):
    return score_archive(
        archive,
        output,
        bundle,
        text_column=TEXT,
        id_column=ID,
        engine="local",
        workers=2,
        rows_per_batch=16,
        **options,
    )


@pytest.mark.parametrize("name", ["in.csv", "in.csv.gz", "in.jsonl", "in.parquet"])
def test_every_format_scores_like_the_scorer(
    name, complaints, tiny_bundle, tiny_scorer, tmp_path
):
    archive = tmp_path / name
    _write(complaints, archive)
    summary = _local(archive, tmp_path / "out", tiny_bundle)
    scored = pq.read_table(tmp_path / "out").to_pandas()

    assert summary.complaints == len(complaints) and summary.errors == 0
    assert scored[ID].astype(str).tolist() == complaints[ID].tolist()
    assert set(scored["model_version"]) == {"tiny-test"}
    # Each complaint is scored on its own, so the archive's slicing cannot move it.
    expected = [
        tiny_scorer.score([Complaint(r[TEXT], {k: r[k] for k in KEYS if r[k]})])[0]
        for _, r in complaints.iterrows()
    ]
    got = scored["escalation_probability"].to_numpy()
    want = [p.escalation.probability for p in expected]
    assert got == pytest.approx(want, abs=1e-9)
    assert scored["category"].tolist() == [p.category.label for p in expected]
    assert scored["flagged"].tolist() == [p.escalation.flagged for p in expected]


def test_a_missing_column_is_named_with_the_columns_found_and_the_flag(
    complaints, tiny_bundle, tmp_path
):
    archive = tmp_path / "calls.csv"
    _write(complaints, archive)
    message = (
        f"{archive} has no column 'text' (columns: {', '.join(complaints.columns)}); "
        "pass --text-column to name the column that holds it"
    )
    with pytest.raises(ArchiveError, match=re.escape(message)):
        score_archive(archive, tmp_path / "out", tiny_bundle, engine="local")
    with pytest.raises(ArchiveError, match=re.escape("pass --metadata company=COLUMN")):
        score_archive(
            archive,
            tmp_path / "out",
            tiny_bundle,
            text_column=TEXT,
            metadata={"company": "company_name"},
            engine="local",
        )


def test_unscorable_rows_get_an_error_and_the_rest_are_scored(
    complaints, tiny_bundle, tmp_path
):
    frame = complaints.head(5).copy()
    frame.loc[1, TEXT] = ""
    frame.loc[3, TEXT] = "\u200b \u200b"
    archive = tmp_path / "in.csv"
    _write(frame, archive)
    summary = _local(archive, tmp_path / "out", tiny_bundle)
    scored = pq.read_table(tmp_path / "out").to_pandas()

    assert summary.errors == 2
    assert scored["error"].tolist()[1] == "the text column is empty"
    assert "no readable text" in scored["error"].tolist()[3]
    assert scored["escalation_probability"].isna().tolist() == [
        False,
        True,
        False,
        True,
        False,
    ]


def test_output_is_not_mixed_with_an_earlier_run(complaints, tiny_bundle, tmp_path):
    archive = tmp_path / "in.parquet"
    _write(complaints.head(4), archive)
    _local(archive, tmp_path / "out", tiny_bundle)
    with pytest.raises(ArchiveError, match="pass --overwrite"):
        _local(archive, tmp_path / "out", tiny_bundle)
    assert (
        _local(archive, tmp_path / "out", tiny_bundle, overwrite=True).complaints == 4
    )


def test_without_ray_it_runs_on_local_processes_and_says_so(
    complaints, tiny_bundle, tmp_path, monkeypatch
):
    archive = tmp_path / "in.jsonl"
    _write(complaints.head(3), archive)
    monkeypatch.setattr(run, "ray_installed", lambda: False)
    notes = []
    summary = score_archive(
        archive, tmp_path / "out", tiny_bundle, text_column=TEXT, note=notes.append
    )
    assert summary.engine == "local" and summary.complaints == 3
    assert notes == [run.RAY_MISSING.format(workers=1)]
    with pytest.raises(ArchiveError, match="--engine ray needs Ray"):
        score_archive(
            archive, tmp_path / "again", tiny_bundle, text_column=TEXT, engine="ray"
        )


def test_the_command_scores_and_reports(complaints, tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from triage_cli.main import app

    archive = tmp_path / "in.csv"
    _write(complaints.head(6), archive)
    result = CliRunner().invoke(
        app,
        [
            *("batch-score", str(archive), str(tmp_path / "out")),
            *("--text-column", TEXT, "--id-column", ID, "--engine", "local"),
            *("--model-dir", str(tiny_bundle), "--workers", "1"),
            *("--metadata", "company=company", "--metadata", "state=state"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Scored 6 complaints (0 not scorable) with tiny-test" in " ".join(
        result.output.split()
    )
    bad = CliRunner().invoke(
        app, ["batch-score", str(archive), str(tmp_path / "x"), "--metadata", "oops"]
    )
    assert bad.exit_code == 1 and "--metadata takes KEY=COLUMN" in bad.output
    assert pq.read_table(tmp_path / "out").column_names[0] == ID


def test_a_jsonl_text_of_another_type_names_the_file_and_leaves_no_output(
    tiny_bundle, tmp_path
):
    archive = tmp_path / "calls.jsonl"
    lines = ['{"text": "charged twice"}'] * 3 + ['{"text": 123}']
    archive.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out"

    with pytest.raises(ArchiveError, match=re.escape(f"{archive} cannot be read")):
        score_archive(archive, output, tiny_bundle, engine="local")
    assert not output.exists()


def test_a_file_that_is_not_utf8_says_so_and_how_to_fix_it(tiny_bundle, tmp_path):
    archive = tmp_path / "calls.csv"
    archive.write_bytes("text\ncaf\u00e9 charged twice\n".encode("latin-1"))

    with pytest.raises(ArchiveError, match="is not UTF-8 text .* re-encode it"):
        score_archive(archive, tmp_path / "out", tiny_bundle, engine="local")
