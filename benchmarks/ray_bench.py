"""Batch-scoring throughput with 1 and 2 workers, on Ray and on local processes.

Usage: ``python benchmarks/ray_bench.py [--complaints 1000] [--bundle models/default]``.

The same real CFPB complaints (the first N rows of the bundled 2023 file, as gzipped CSV) are
scored into Parquet by:

- the single-process scorer: one `triage.Scorer` in this process (onnxruntime's own threads,
  so both cores), scoring batches of 256 complaints as the HTTP service's batch route
  would: the baseline;
- `triage batch-score --engine local` with 1 and 2 worker processes;
- `triage batch-score --engine ray` with 1 and 2 workers, on a local Ray cluster of a head
  and a worker node (1 CPU each) that this script starts on loopback and stops.

Every figure is wall time from start to end, model loading and worker start-up included, as a
user sees it (for the engines: until the last Parquet file is written). The engines score each
complaint on its own (see `batch.archive`), one onnxruntime thread per worker. The load average of the machine is recorded before and
after each run, since the development machine is shared. Results go to
`benchmarks/results/ray_bench.json` with the machine's details.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import machine_details

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from batch.archive import ArchiveColumns, complaints_of, iter_tables  # noqa: E402
from batch.run import score_archive  # noqa: E402
from tests.ray_cluster import local_cluster  # noqa: E402
from triage.scorer import Scorer  # noqa: E402

CFPB = REPO / "data" / "cfpb" / "complaints_2023_with_narrative.csv.gz"
RESULTS = Path(__file__).resolve().parent / "results" / "ray_bench.json"
TEXT, ID = "complaint_what_happened", "complaint_id"


def write_archive(folder: Path, complaints: int) -> Path:
    path = folder / "complaints.csv.gz"
    frame = pd.read_csv(CFPB, dtype=str, keep_default_na=False).head(complaints)
    frame.to_csv(path, index=False)
    return path


def single_process(archive: Path, bundle: Path) -> float:
    """The baseline: one Scorer in this process, reading the archive and scoring it in
    batches of 256 complaints, as one `/v1/triage/batch`-style call each (no Parquet)."""
    started = time.perf_counter()
    scorer = Scorer(bundle)
    columns = ArchiveColumns(TEXT, ID, {k: k for k in ("company", "state", "tags")})
    for table in iter_tables(archive, columns, 256):
        scorer.score([c for c in complaints_of(table, columns) if c is not None])
    return time.perf_counter() - started


def engine_run(
    archive: Path, output: Path, bundle: Path, engine: str, workers: int, address=None
) -> float:
    started = time.perf_counter()
    summary = score_archive(
        archive,
        output,
        bundle,
        text_column=TEXT,
        id_column=ID,
        engine=engine,
        workers=workers,
        ray_address=address,
    )
    assert summary.errors == 0
    return time.perf_counter() - started


def measured(name: str, workers: int, complaints: int, run) -> dict:
    load_before = os.getloadavg()[0]
    seconds = run()
    result = {
        "system": name,
        "workers": workers,
        "seconds": round(seconds, 2),
        "complaints_per_second": round(complaints / seconds, 2),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=1000)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        archive = write_archive(folder, args.complaints)
        n = args.complaints

        def out(name: str) -> Path:
            return folder / name

        results.append(
            measured(
                "single-process scorer",
                1,
                n,
                lambda: single_process(archive, args.bundle),
            )
        )
        for workers in (1, 2):
            results.append(
                measured(
                    "local processes",
                    workers,
                    n,
                    lambda w=workers: engine_run(
                        archive, out(f"local{w}"), args.bundle, "local", w
                    ),
                )
            )
        with local_cluster(cpus_per_node=1) as cluster:
            for workers in (1, 2):
                results.append(
                    measured(
                        "ray data",
                        workers,
                        n,
                        lambda w=workers: engine_run(
                            archive,
                            out(f"ray{w}"),
                            args.bundle,
                            "ray",
                            w,
                            cluster.address,
                        ),
                    )
                )
            import ray

            ray.shutdown()

    report = {
        "benchmark": "batch scoring throughput, 1 and 2 workers",
        "command": f"python benchmarks/ray_bench.py --complaints {args.complaints}",
        "complaints": args.complaints,
        "bundle": Scorer(args.bundle).version,
        "cluster": "local: head and worker node on loopback, 1 CPU each",
        "machine": machine_details(["ray", "onnxruntime", "pyarrow"]),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
