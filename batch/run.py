"""Choose the engine for a batch run: Ray Data when ray is installed (or asked for), else
local processes."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from batch.archive import (
    ArchiveError,
    BatchJob,
    BatchSummary,
    prepare_output,
    resolve_columns,
)
from triage.bundle import load_bundle

logger = logging.getLogger(__name__)

ENGINES = ("auto", "ray", "local")
RAY_MISSING = (
    "Ray is not installed: scoring on {workers} local processes instead (install the "
    "ray extra, `pip install -e '.[ray]'`, to score across a cluster)"
)


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def score_archive(
    archive: Path,
    output: Path,
    bundle: Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    metadata: Mapping[str, str] | None = None,
    engine: str = "auto",
    workers: int = 1,
    rows_per_batch: int = 256,
    threads_per_worker: int = 1,
    threshold: float | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    note: Callable[[str], None] = logger.warning,
) -> BatchSummary:
    """Score every complaint of `archive` with `bundle` into Parquet under `output`.

    `engine` "auto" uses Ray when it is installed and says so through `note` when it is not;
    "ray" insists on it; "local" never uses it.
    """
    if engine not in ENGINES:
        raise ArchiveError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    if workers < 1 or rows_per_batch < 1 or threads_per_worker < 1:
        raise ArchiveError(
            "workers, rows per batch and threads per worker are 1 or more"
        )
    keys = load_bundle(bundle).manifest.metadata_keys
    columns = resolve_columns(archive, text_column, id_column, metadata, keys)
    created = not output.exists()
    prepare_output(output, overwrite)

    use_ray = engine == "ray" or (engine == "auto" and ray_installed())
    if engine == "ray" and not ray_installed():
        raise ArchiveError(
            "--engine ray needs Ray: install the ray extra (`pip install -e '.[ray]'`), "
            "or use --engine local"
        )
    if engine == "auto" and not use_ray:
        note(RAY_MISSING.format(workers=workers))
    job = BatchJob(
        archive,
        output,
        columns,
        bundle,
        workers=workers,
        rows_per_batch=rows_per_batch,
        threads_per_worker=threads_per_worker,
        threshold=threshold,
    )
    try:
        if use_ray:
            from batch.ray_data import score_on_ray

            return score_on_ray(job, address=ray_address)
        from batch.local import score_locally

        return score_locally(job)
    except ArchiveError:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # a run that failed on its input leaves no empty directory
        raise
