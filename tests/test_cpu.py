"""The CPU count that sizes onnxruntime respects a container's cgroup quota."""

from __future__ import annotations

import os

import pytest

from triage import cpu


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000", None),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("garbage", None),
    ],
)
def test_cgroup_quota_caps_the_affinity_count(tmp_path, monkeypatch, cpu_max, expected):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    monkeypatch.setattr(cpu, "CGROUP_CPU_MAX", path)
    affinity = len(os.sched_getaffinity(0))
    assert cpu.available_cpus() == min(affinity, expected or affinity)


def test_without_a_cgroup_file_the_affinity_mask_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "CGROUP_CPU_MAX", tmp_path / "missing")
    assert cpu.available_cpus() == len(os.sched_getaffinity(0))


def test_readiness_reports_the_sizing(tiny_bundle, tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings

    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path, max_concurrent_runs=1)
    with TestClient(create_app(settings)) as client:
        details = client.get("/readyz").json()["details"]
    assert details["max_concurrent_runs"] == 1
    assert details["cpus_available"] == cpu.available_cpus()
