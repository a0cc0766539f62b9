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
