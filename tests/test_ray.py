"""On a local Ray cluster (a head and a worker node on loopback, started and stopped here):
`triage serve --ray` answers like the single-process service, batches on its replicas and
never imports torch there; `triage batch-score` on Ray scores real CFPB complaints as the
local processes do, within the batch tolerance of int8 scoring."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import (
    CFPB_2023,
    DEFAULT_BUNDLE,
    cli_key,
    free_port,
    wait_ready,
)
from tests.ray_cluster import LocalCluster, local_cluster
from triage.scorer import Complaint

TOLERANCE = 0.02  # int8 dynamic quantization scales activations per batch
ARCHIVE_COMPLAINTS = 2000

DESCRIBE = """
import json, sys
import ray
from ray import serve
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
handle = serve.get_deployment_handle("ComplaintScorer", app_name="triage-scorer")
print(json.dumps(handle.describe.remote().result(timeout_s=60)))
"""


@pytest.fixture(scope="module")
def cluster() -> LocalCluster:
    with local_cluster(cpus_per_node=1) as running:
        yield running


# The archive test comes first: the service's replicas hold CPUs until the module ends.


def _triage() -> str:
    return shutil.which("triage", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def cfpb_archive(tmp_path_factory) -> Path:
    """The first ARCHIVE_COMPLAINTS real CFPB complaints, as the bundled gzipped CSV."""
    path = tmp_path_factory.mktemp("archive") / "complaints.csv.gz"
    frame = pd.read_csv(CFPB_2023, dtype=str, keep_default_na=False)
    frame.head(ARCHIVE_COMPLAINTS).to_csv(path, index=False)
    return path


def _batch_score(archive: Path, output: Path, env: dict, *options: str) -> str:
    command = [_triage(), "batch-score", str(archive), str(output)]
    command += [
        "--text-column",
        "complaint_what_happened",
        "--id-column",
        "complaint_id",
    ]
    command += ["--model-dir", str(DEFAULT_BUNDLE), "--workers", "2", *options]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_batch_score_on_ray_matches_local_processes_on_real_complaints(
    cluster, cfpb_archive, tmp_path
):
    ray_log = _batch_score(
        cfpb_archive,
        tmp_path / "ray",
        cluster.env,
        *("--engine", "ray", "--ray-address", cluster.address),
    )
    _batch_score(cfpb_archive, tmp_path / "local", cluster.env, "--engine", "local")

    on_ray = pq.read_table(tmp_path / "ray").to_pandas().set_index("complaint_id")
    local = pq.read_table(tmp_path / "local").to_pandas().set_index("complaint_id")
    on_ray = on_ray.loc[local.index]
    assert len(local) == ARCHIVE_COMPLAINTS and on_ray.index.is_unique
    assert f"Scored {ARCHIVE_COMPLAINTS} complaints" in " ".join(ray_log.split())
    assert "on 2 ray workers" in " ".join(ray_log.split())
    assert on_ray["error"].isna().all() and local["error"].isna().all()
    assert set(on_ray["model_version"]) == set(local["model_version"])
    # The contract is the int8 batch tolerance; since every complaint is scored on its own,
    # how Ray partitions the archive cannot move a prediction at all (float noise aside).
    for column in ("escalation_probability", "category_probability"):
        delta = (on_ray[column] - local[column]).abs().max()
        assert delta <= TOLERANCE and delta <= 1e-6, f"{column} moved by {delta:.2g}"
    assert (on_ray["category"] == local["category"]).all()
    assert (on_ray["flagged"] == local["flagged"]).all()
    assert (on_ray["chunks"] == local["chunks"]).all()


@pytest.fixture(scope="module")
def ray_service(cluster, tiny_bundle, tmp_path_factory):
    """`triage serve --ray` on the cluster with the tiny bundle; yields (base URL, key)."""
    folder = tmp_path_factory.mktemp("ray-serve")
    env = {
        **cluster.env,
        "TRIAGE_MODEL_DIR": str(tiny_bundle),
        "TRIAGE_DATA_DIR": str(folder),
    }
    key = cli_key(env, "caller", "ray test")
    port, log_path = free_port(), folder / "serve.log"
    command = [_triage(), "serve", "--ray", "--ray-address", cluster.address]
    command += ["--port", str(port), "--proxy-location", "HeadOnly"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, log_path, seconds=240)
            yield base, key
        finally:
            process.terminate()
            process.wait(timeout=60)


@pytest.mark.timeout(600)
def test_ray_serve_answers_like_the_single_process_service(
    ray_service, tiny_scorer, real_complaints
):
    base, key = ray_service
    headers = {"Authorization": f"Bearer {key}"}
    texts = real_complaints[:8]
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        singles = [client.post("/v1/triage", json={"text": t}) for t in texts]
        batch = client.post(
            "/v1/triage/batch", json={"items": [{"text": t} for t in texts]}
        )
        # More complaints than one Ray Serve batch holds (32): scored as one batch.
        large = client.post(
            "/v1/triage/batch", json={"items": [{"text": t} for t in real_complaints]}
        )
        empty = client.post("/v1/triage", json={"text": "  \u200b "})
        unknown = client.post("/v1/triage", json={"text": "late fee", "colour": 1})
    anonymous = httpx.post(f"{base}/v1/triage", json={"text": "late fee"}, timeout=60)

    expected = tiny_scorer.score([Complaint(t) for t in texts])
    assert all(r.status_code == 200 for r in singles), singles[0].text
    assert batch.status_code == 200, batch.text
    for answers in ([r.json() for r in singles], batch.json()["results"]):
        for got, want in zip(answers, expected, strict=True):
            assert got["model_version"] == "tiny-test"
            assert got["category"]["label"] == want.category.label
            assert got["escalation"]["probability"] == pytest.approx(
                want.escalation.probability, abs=TOLERANCE
            )
            assert got["chunks"] == want.chunks
    assert large.status_code == 200, large.text
    assert len(large.json()["results"]) == len(real_complaints)
    assert empty.status_code == 422 and "nothing to read" in empty.text
    assert unknown.status_code == 422
    assert anonymous.status_code == 401


@pytest.mark.timeout(600)
def test_ray_serve_batches_concurrent_requests_on_replicas_without_torch(
    ray_service, cluster, real_complaints
):
    base, key = ray_service
    headers = {"Authorization": f"Bearer {key}"}

    def score(text: str) -> int:
        body = {"text": text}
        return httpx.post(
            f"{base}/v1/triage", json=body, headers=headers, timeout=120
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(score, real_complaints[:32]))
    described = subprocess.run(
        [sys.executable, "-c", DESCRIBE, cluster.address],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert codes == [200] * 32
    assert described.returncode == 0, described.stderr
    replica = json.loads(described.stdout.strip().splitlines()[-1])
    assert replica["model_version"] == "tiny-test"
    assert replica["heavy_modules"] == []
    # Ray Serve's batching put several requests into one scoring call.
    assert replica["batches"] < replica["calls"], replica
