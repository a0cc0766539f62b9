"""Score an archive on local processes, one `Scorer` per process (the engine without Ray).

The archive is streamed in slices; each slice goes to a worker process and its predictions are
written, in input order, to one Parquet file in the output directory. Only a few slices are in
flight at once, so memory stays flat however large the archive is.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from batch.archive import (
    ArchiveColumns,
    ArchiveError,
    BatchJob,
    BatchSummary,
    count_rows,
    iter_tables,
    score_table,
    summarise_output,
)
from triage.bundle import load_bundle
from triage.scorer import Scorer

logger = logging.getLogger(__name__)

OUTPUT_FILE = "part-00000.parquet"

# The scorer of this worker process, made once by the pool's initializer.
_scorer: Scorer | None = None


def _start_worker(bundle: str, threads: int, threshold: float | None) -> None:
    global _scorer
    _scorer = Scorer(bundle, threads=threads, threshold=threshold)


def _score_slice(table: pa.Table, columns: ArchiveColumns) -> pa.Table:
    assert _scorer is not None, "the pool initializer did not run"
    return score_table(_scorer, table, columns)


def score_locally(job: BatchJob, console: Console | None = None) -> BatchSummary:
    """Score `job.archive` into `job.output`/part-00000.parquet on `job.workers` processes."""
    version = load_bundle(job.bundle).version
    job.output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Worker processes start fresh rather than forked: a fork would copy this process's
    # threads and locks (onnxruntime's, rich's) in whatever state they are.
    pool = ProcessPoolExecutor(
        max_workers=job.workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(str(job.bundle), job.threads_per_worker, job.threshold),
    )
    with pool, _progress(console) as progress:
        task = progress.add_task("scoring complaints", total=count_rows(job.archive))
        _run(pool, job, lambda n: progress.advance(task, n))
    if not (job.output / OUTPUT_FILE).exists():
        raise ArchiveError(f"{job.archive} holds no complaints: nothing was scored")
    seconds = time.monotonic() - started
    summary = summarise_output(job.output, "local", job.workers, seconds, version)
    logger.info(
        "scored %d complaints on %d local processes in %.1f s",
        summary.complaints,
        job.workers,
        seconds,
    )
    return summary


def _run(pool: ProcessPoolExecutor, job: BatchJob, advance) -> None:
    """Keep two slices per worker in flight and write results in the order they were read."""
    path = job.output / OUTPUT_FILE
    in_flight: deque[Future] = deque()
    writer: pq.ParquetWriter | None = None
    try:
        for table in iter_tables(job.archive, job.columns, job.rows_per_batch):
            in_flight.append(pool.submit(_score_slice, table, job.columns))
            if len(in_flight) >= 2 * job.workers:
                writer = _write(writer, path, in_flight.popleft().result(), advance)
        while in_flight:
            writer = _write(writer, path, in_flight.popleft().result(), advance)
    finally:
        for future in in_flight:
            future.cancel()
        if writer is not None:
            writer.close()


def _write(writer, path: Path, table: pa.Table, advance) -> pq.ParquetWriter:
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    advance(table.num_rows)
    return writer


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
