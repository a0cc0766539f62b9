"""Each benchmark script runs end to end on tiny input (a smoke test: no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(script: str, *arguments: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr


def test_explain_benchmark_writes_its_report(tiny_bundle, tmp_path):
    output = tmp_path / "explain.json"
    _run(
        "explain_bench.py",
        *("--complaints", "3", "--bundle", str(tiny_bundle), "--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert report["all"]["complaints"] == 3 and report["bundle"] == "tiny-test"
    assert report["machine"]["versions"]["onnxruntime"]


def test_soak_script_runs_briefly_with_no_errors_and_loses_nothing(
    tiny_bundle, tmp_path
):
    output = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "soak.py"),
            *("--minutes", "0.1", "--concurrency", "8", "--warmup", "2"),
            *("--bundle", str(tiny_bundle), "--output", str(output)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    assert report["requests"] > 0 and report["errors"] == 0
    assert report["cases_recorded"] > 0 and report["cases_missing"] == 0
    for phase in ("before_load", "after_load"):
        assert report["bad_inputs"][phase]["server_errors"] == 0
    assert report["alive_after"] is True


def test_similar_benchmark_writes_its_report(tiny_bundle, tmp_path):
    output = tmp_path / "similar.json"
    _run(
        "similar_bench.py",
        *("--complaints", "4", "--sizes", "10,50", "--queries", "3"),
        *("--bundle", str(tiny_bundle), "--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert report["bundle"] == "tiny-test" and report["embedding"]["complaints"] == 4
    assert [row["cases"] for row in report["search"]] == [10, 50]


def test_model_benchmark_compares_every_system_on_a_few_texts(tmp_path):
    output = tmp_path / "model.json"
    _run("model_bench.py", "--texts", "6", "--rounds", "1", "--output", str(output))
    report = json.loads(output.read_text())
    assert set(report["texts_per_s"]) >= {
        "triage_b1",
        "triage_per_core",
        "pipeline_b1",
        "pipeline_b32",
        "tfidf_b1",
    }
    assert report["ratio_vs_pipeline"]["batched"] > 0
    assert [row["chunks_per_run"] for row in report["run_rows"]] == [1, 4, 16]
    # One chunk per run is what the service does: scores equal scoring alone.
    assert report["run_rows"][0]["max_probability_shift"] < 1e-6


def test_cost_benchmark_relates_speed_to_the_ceiling(tmp_path):
    output = tmp_path / "cost.json"
    _run("cost_bench.py", "--texts", "2", "--output", str(output))
    report = json.loads(output.read_text())
    assert report["peak_gflops"]["int8"] > 0 and report["peak_gflops"]["fp32"] > 0
    for row in report["lengths"]:
        assert row["texts"] == 2 and 0 < row["ceiling_texts_per_s"]
        assert row["gflops_per_text"] > 0


def test_http_benchmark_measures_both_serving_modes(tiny_bundle, tmp_path):
    output = tmp_path / "http.json"
    _run(
        "http_bench.py",
        *("--seconds", "1", "--rate", "5", "--texts", "20"),
        *("--bundle", str(tiny_bundle), "--output", str(output)),
    )
    report = json.loads(output.read_text())
    for mode in ("http", "http_without_micro_batching"):
        assert report[mode]["concurrency_8"]["errors"] == 0
        assert report[mode]["cold_start_s"] > 0
    assert report["http"]["open_loop_5rps"]["requests"] > 0
    assert report["http"]["server"]["micro_batching"]["requests"] > 0
    assert report["http_without_micro_batching"]["server"]["micro_batching"] is None


def test_readme_performance_section_matches_the_saved_results():
    _run("report.py", "--check")


@pytest.mark.timeout(900)
def test_ray_benchmark_writes_its_report(tiny_bundle, tmp_path):
    output = tmp_path / "ray.json"
    _run(
        "ray_bench.py",
        *("--complaints", "12", "--bundle", str(tiny_bundle), "--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert report["bundle"] == "tiny-test" and report["machine"]["versions"]["ray"]
    systems = [(r["system"], r["workers"]) for r in report["results"]]
    assert systems == [
        ("single-process scorer", 1),
        ("local processes", 1),
        ("local processes", 2),
        ("ray data", 1),
        ("ray data", 2),
    ]


def test_training_record_keeps_a_runs_arguments_and_validation_history(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text(json.dumps({"epochs": 2, "seed": 13}))
    history = [{"epoch": 1, "score": 0.5}, {"epoch": 2, "score": 0.6}]
    (run / "history.json").write_text(json.dumps(history))
    output = tmp_path / "training.json"

    _run(
        "training_record.py",
        *(str(run), str(output), "--started", "T0", "--finished", "T1"),
    )

    record = json.loads(output.read_text())
    assert record["arguments"]["seed"] == 13
    assert record["epochs_done"] == 2 and record["validation_history"] == history
    assert (record["started"], record["finished"]) == ("T0", "T1")


def test_training_record_refuses_a_run_with_no_finished_epoch(tmp_path):
    (tmp_path / "args.json").write_text("{}")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "training_record.py"), str(tmp_path)]
        + [str(tmp_path / "out.json"), "--started", "T0", "--finished", "T1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "no history.json" in done.stderr
    assert not (tmp_path / "out.json").exists()
