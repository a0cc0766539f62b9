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


def score_locally(
    archive: Path,
    output: Path,
    columns: ArchiveColumns,
    bundle: Path,
    workers: int,
    rows_per_batch: int = 256,
    threads_per_worker: int = 1,
    threshold: float | None = None,
    console: Console | None = None,
) -> BatchSummary:
    """Score `archive` into `output`/part-00000.parquet on `workers` processes."""
    version = load_bundle(bundle).version
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Worker processes start fresh rather than forked: a fork would copy this process's
    # threads and locks (onnxruntime's, rich's) in whatever state they are.
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(str(bundle), threads_per_worker, threshold),
    )
    with pool, _progress(console) as progress:
        task = progress.add_task("scoring complaints", total=count_rows(archive))
        _run(
            pool,
            archive,
            output / OUTPUT_FILE,
            columns,
            rows_per_batch,
            workers,
            lambda n: progress.advance(task, n),
        )
    if not (output / OUTPUT_FILE).exists():
        raise ArchiveError(f"{archive} holds no complaints: nothing was scored")
    seconds = time.monotonic() - started
    summary = summarise_output(output, "local", workers, seconds, version)
    logger.info(
        "scored %d complaints on %d local processes in %.1f s",
        summary.complaints,
        workers,
        seconds,
    )
    return summary


def _run(pool, archive, path, columns, rows, workers, advance) -> None:
    """Keep two slices per worker in flight and write results in the order they were read."""
    in_flight: deque[Future] = deque()
    writer: pq.ParquetWriter | None = None
    try:
        for table in iter_tables(archive, columns, rows):
            in_flight.append(pool.submit(_score_slice, table, columns))
            if len(in_flight) >= 2 * workers:
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
