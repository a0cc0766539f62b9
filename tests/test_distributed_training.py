"""`triage train` under torchrun: two data-parallel processes (gloo, CPU) train the tiny model
for a few steps and end with identical parameters that moved from where they started."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_small_spec


@pytest.mark.timeout(600)
def test_two_replicas_stay_in_sync(tmp_path):
    from training.tiny import write_tiny_base_model

    base = write_tiny_base_model(tmp_path / "base")
    spec = write_small_spec(tmp_path / "data")
    output = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    command = [torchrun, "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "triage_cli.main", "train", "--spec", str(spec)]
    command += ["--output", str(output), "--base-model", str(base)]
    command += ["--epochs", "1", "--batch-size", "16", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-4000:]

    record = json.loads((output / "distributed.json").read_text())
    start, end = (
        record["parameter_digests_at_start"],
        record["parameter_digests_at_end"],
    )
    assert record["world_size"] == 2 and len(start) == len(end) == 2
    assert start[0] == start[1] and end[0] == end[1]
    assert end[0] != start[0]
    assert (output / "best.pt").is_file() and (output / "checkpoint.pt").is_file()
    assert "training replica 1 of 2" in done.stderr
