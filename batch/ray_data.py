"""Score an archive across a Ray cluster with Ray Data: one `Scorer` per worker actor.

Ray Data reads the archive in blocks, a pool of `workers` actors (each holding one onnxruntime
session, made once) scores them with the same `score_table` the local engine uses, and the
predictions are written as Parquet files into the output directory by the workers themselves.
Ray Data shows its own progress bars. The bundle path and the output directory must be
readable and writable at the same path on every node (a shared filesystem, or the same image).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyarrow as pa
import ray
import ray.data

from batch.archive import (
    ArchiveColumns,
    BatchJob,
    BatchSummary,
    archive_format,
    column_names,
    csv_options,
    score_table,
    summarise_output,
)
from triage.bundle import load_bundle
from triage.scorer import Scorer

logger = logging.getLogger(__name__)

# Reading and writing ask for no CPU of their own: the scoring workers hold every CPU of a
# cluster sized for them, and a read task waiting for a free CPU would never start.
IO_CPUS = 0


class ArchiveScorer:
    """A Ray Data worker: loads the bundle once, then scores every block it is given."""

    def __init__(
        self,
        bundle: str,
        columns: ArchiveColumns,
        threads: int,
        threshold: float | None,
    ) -> None:
        self.scorer = Scorer(bundle, threads=threads, threshold=threshold)
        self.columns = columns

    def __call__(self, table: pa.Table) -> pa.Table:
        return score_table(self.scorer, table, self.columns)


def connect(address: str | None) -> None:
    """Join the cluster at `address` ("auto", "HOST:PORT", "ray://HOST:10001"); without one,
    RAY_ADDRESS or a Ray started on this machine for the run."""
    if ray.is_initialized():
        return
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    resources = ray.cluster_resources()
    logger.info(
        "connected to Ray: %d nodes, %s CPUs",
        len([n for n in ray.nodes() if n.get("Alive")]),
        resources.get("CPU", 0),
    )


def read_archive(archive: Path, columns: ArchiveColumns) -> ray.data.Dataset:
    """The archive's needed columns as a Ray dataset, parsed as the local engine parses it."""
    kind = archive_format(archive)
    path = str(archive.resolve())
    if kind == "parquet":
        return ray.data.read_parquet(path, columns=columns.needed, num_cpus=IO_CPUS)
    stream = {"compression": "gzip"} if archive.suffix.lower() == ".gz" else None
    if kind == "csv":
        parse, convert = csv_options(column_names(archive))
        convert.include_columns = columns.needed
        return ray.data.read_csv(
            path,
            parse_options=parse,
            convert_options=convert,
            arrow_open_stream_args=stream,
            num_cpus=IO_CPUS,
        )
    dataset = ray.data.read_json(
        path,
        lines=True,
        arrow_open_stream_args=stream,
        file_extensions=None,
        num_cpus=IO_CPUS,
    )
    return dataset.select_columns(columns.needed)


def score_on_ray(job: BatchJob, address: str | None = None) -> BatchSummary:
    """Score `job.archive` into Parquet files under `job.output` on `job.workers` Ray actors."""
    version = load_bundle(job.bundle).version
    connect(address)
    started = time.monotonic()
    scored = read_archive(job.archive, job.columns).map_batches(
        ArchiveScorer,
        fn_constructor_kwargs={
            "bundle": str(job.bundle.resolve()),
            "columns": job.columns,
            "threads": job.threads_per_worker,
            "threshold": job.threshold,
        },
        batch_format="pyarrow",
        batch_size=job.rows_per_batch,
        compute=ray.data.ActorPoolStrategy(size=job.workers),
        num_cpus=job.threads_per_worker,
    )
    scored.write_parquet(
        str(job.output.resolve()),
        mode="overwrite",
        ray_remote_args={"num_cpus": IO_CPUS},
    )
    seconds = time.monotonic() - started
    summary = summarise_output(job.output, "ray", job.workers, seconds, version)
    logger.info(
        "scored %d complaints on %d Ray workers in %.1f s",
        summary.complaints,
        job.workers,
        seconds,
    )
    return summary
