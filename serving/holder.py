"""The model that serves answers, and the swap to a newly promoted one without a restart.

The holder keeps the champion's `Scorer` in `app.state.scorer`. A request reads that reference
once, so one in flight finishes on the model it started with while a swap puts the next one in
place (assigning a reference is atomic). A new champion is loaded and checked beside the old
one; if it fails to load or to score, the old one keeps serving and the failure is reported by
`/readyz`. With shadow scoring on, the newest challenger is held too.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from serving.db.models import CHALLENGER, ModelVersion, utcnow
from serving.deps import database_reason
from serving.registry import champion, ensure_champion
from serving.settings import Settings
from triage.cpu import available_cpus
from triage.errors import BundleError
from triage.scorer import Complaint, Scorer

logger = logging.getLogger(__name__)

PROBES = [
    Complaint("I was charged twice for the same purchase and nobody will refund me."),
    Complaint("The collector keeps calling my work.", {"state": "CA"}),
]


@dataclass
class HolderStatus:
    """What `/readyz` reports about model swaps."""

    last_check_at: datetime | None = None
    last_swap_at: datetime | None = None
    last_error: str | None = None
    shadow_version: str | None = None
    swaps: list[str] = field(default_factory=list)


class ModelHolder:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.status = HolderStatus()

    @property
    def scorer(self) -> Scorer | None:
        return self.app.state.scorer

    def start(self, injected: Scorer | None = None) -> None:
        """Serve the registry's champion (registering the configured bundle on first start)."""
        first = (
            injected.bundle.path if injected is not None else self.settings.model_dir
        )
        with self.app.state.database.session() as session, session.begin():
            row = ensure_champion(session, Path(first))
            version, path = row.version, row.path
        if Path(path).resolve() != Path(first).resolve():
            logger.info(
                "serving the registry's champion %s; TRIAGE_MODEL_DIR (%s) is only used "
                "when the registry is empty",
                version,
                first,
            )
        if injected is not None and injected.version == version:
            self.app.state.scorer = injected
        else:
            self.app.state.scorer = self._load(path)
        self._refresh_shadow()

    def _load(self, path: str) -> Scorer:
        runs, threads = run_layout(self.settings)
        scorer = Scorer(
            path,
            threads=threads,
            threshold=self.settings.escalation_threshold,
            max_concurrent_runs=runs,
        )
        _verify(scorer)
        return scorer

    def check(self) -> dict:
        """Swap to the registry's champion if it changed; returns what happened."""
        self.status.last_check_at = utcnow()
        with self.app.state.database.session() as session:
            row = champion(session)
            wanted = (row.version, row.path) if row is not None else None
        current = self.scorer.version if self.scorer is not None else None
        if wanted is None or wanted[0] == current:
            self._refresh_shadow()
            return {"model_version": current, "changed": False, "error": None}

        version, path = wanted
        try:
            candidate = self._load(path)
        except (BundleError, ValueError, RuntimeError, OSError) as error:
            self.status.last_error = f"{version} was not swapped in: {error}"
            logger.error("keeping model %s: %s", current, self.status.last_error)
            return {
                "model_version": current,
                "changed": False,
                "error": self.status.last_error,
            }

        self.app.state.scorer = candidate
        self.status.last_error = None
        self.status.last_swap_at = utcnow()
        self.status.swaps.append(version)
        logger.info("swapped model %s for %s", current, version)
        self._refresh_shadow()
        return {"model_version": version, "changed": True, "error": None}

    def _refresh_shadow(self) -> None:
        if not self.settings.shadow:
            return
        with self.app.state.database.session() as session:
            row = session.scalar(
                select(ModelVersion)
                .where(ModelVersion.status == CHALLENGER)
                .order_by(ModelVersion.registered_at.desc())
                .limit(1)
            )
            wanted = (row.version, row.path) if row is not None else None
        shadow = getattr(self.app.state, "shadow", None)
        if wanted is None:
            self.app.state.shadow, self.status.shadow_version = None, None
            return
        if shadow is not None and shadow.version == wanted[0]:
            return
        try:
            self.app.state.shadow = self._load(wanted[1])
            self.status.shadow_version = wanted[0]
            logger.info("shadow scoring with challenger %s", wanted[0])
        except (BundleError, ValueError, RuntimeError, OSError) as error:
            self.status.last_error = f"challenger {wanted[0]} cannot shadow: {error}"
            logger.error(self.status.last_error)

    async def watch(self) -> None:
        """Check the registry every TRIAGE_REGISTRY_POLL_SECONDS until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.registry_poll_seconds)
            try:
                await run_in_threadpool(self.check)
                failing = False
            except Exception as error:  # the watcher must outlive any one failed check
                reason = (
                    database_reason(error) if hasattr(error, "orig") else repr(error)
                )
                self.status.last_error = f"registry check failed: {reason}"
                if not failing:
                    logger.warning(self.status.last_error)
                failing = True


def run_layout(settings: Settings) -> tuple[int, int]:
    """Concurrent model runs and onnxruntime threads per run, from settings and the CPUs.

    By default every CPU the process may use (cgroup quota and affinity) runs its own
    single-threaded model run: on a small machine, independent runs keep every core busy without
    the threads of one run waiting on each other.
    """
    cpus = available_cpus()
    runs = settings.max_concurrent_runs or cpus
    threads = settings.threads or max(1, cpus // runs)
    return runs, threads


def _verify(scorer: Scorer) -> None:
    """Score the probe complaints: every probability must be a number in [0, 1]."""
    for prediction in scorer.score(PROBES):
        values = (
            [s.probability for s in prediction.category.top]
            if prediction.category
            else []
        )
        if prediction.escalation is not None:
            values.append(prediction.escalation.probability)
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise BundleError(
                f"{scorer.bundle.path}: scores out of range on a probe complaint"
            )
