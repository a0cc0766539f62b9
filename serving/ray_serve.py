"""Serve the HTTP API on Ray Serve: scorer replicas across a cluster behind the same app.

Run it with ``triage serve --ray --ray-address HOST:6379``. Two Ray Serve applications:

- ``triage-scorer``: the `ComplaintScorer` deployment. Each replica loads the bundle once and
  scores through Ray Serve's own batching (`serve.batch`): complaints from concurrent requests
  that reach a replica within a few milliseconds are scored in one call. Replicas autoscale on
  the number of ongoing requests per replica.
- ``triage``: the ingress, the FastAPI app of `serving.app` itself (same routes, request and
  response schemas, keys and roles, validation, case recording), whose scoring calls go to
  the scorer replicas through a deployment handle. It keeps a local copy of the model for the
  manager's routes (explanations, similar cases), which are not on the scoring path.

The bundle and the cases database must be reachable from every node: the same bundle path on
each (a shared filesystem or the same image) and a database server (PostgreSQL) rather than a
SQLite file. Neither deployment imports torch; `ComplaintScorer.describe` reports what a
replica has loaded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.app import create_app
from serving.settings import Settings
from triage.errors import InvalidComplaintError
from triage.scorer import Complaint, Prediction, Scorer

logger = logging.getLogger(__name__)

SCORER_APP = "triage-scorer"
INGRESS_APP = "triage"
SCORER_DEPLOYMENT = "ComplaintScorer"
HEAVY_MODULES = ("torch", "transformers", "datasets", "training")


@dataclass(frozen=True)
class RayServeOptions:
    """How the deployments scale.

    Args:
        max_replicas: most scorer replicas the autoscaler may start.
        min_replicas: scorer replicas kept running when idle.
        scorer_cpus: CPUs (and onnxruntime threads) per scorer replica.
        ingress_cpus: CPUs reserved per ingress replica (auth, validation, the database).
        ingress_replicas: most ingress replicas.
        max_batch_size: most complaints one batched scoring call takes.
        batch_wait_ms: how long a replica waits for more complaints before scoring a batch.
        target_ongoing_requests: requests per scorer replica the autoscaler aims for.
    """

    max_replicas: int = 2
    min_replicas: int = 1
    scorer_cpus: float = 1.0
    ingress_cpus: float = 0.25
    ingress_replicas: int = 2
    max_batch_size: int = 32
    batch_wait_ms: float = 10.0
    target_ongoing_requests: float = 8.0


def _heavy_modules() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] in HEAVY_MODULES)


class ComplaintScorer:
    """A scorer replica: one `triage.Scorer`, fed by batches that Ray Serve collects."""

    def __init__(
        self, bundle: str, threads: int, threshold: float | None, batching: dict
    ) -> None:
        self.scorer = Scorer(bundle, threads=threads, threshold=threshold)
        self.calls = self.batches = self.complaints = 0
        self.max_batch_size = batching["max_batch_size"]
        self._batched = serve.batch(
            self._score_batch,
            max_batch_size=batching["max_batch_size"],
            batch_wait_timeout_s=batching["batch_wait_ms"] / 1000,
            batch_size_fn=lambda calls: sum(len(c) for c in calls),
        )
        logger.info("scorer replica %d serves %s", os.getpid(), self.scorer.version)

    async def score(
        self, complaints: Sequence[Complaint]
    ) -> list[Prediction] | InvalidComplaintError:
        """Predictions for one request's complaints, scored with whatever else arrived
        (a request that fills a batch by itself is scored at once: Ray Serve refuses an
        item larger than the batch)."""
        self.calls += 1
        if len(complaints) >= self.max_batch_size:
            [result] = await self._score_batch([list(complaints)])
            return result
        return await self._batched(list(complaints))

    async def _score_batch(
        self, calls: list[list[Complaint]]
    ) -> list[list[Prediction] | InvalidComplaintError]:
        # The model runs in a thread so the replica keeps accepting requests (and health
        # checks) while it works; they form the next batch.
        self.batches += 1
        flat = [c for call in calls for c in call]
        self.complaints += len(flat)
        try:
            predictions = await asyncio.to_thread(self.scorer.score, flat)
        except InvalidComplaintError:
            # One request's bad complaint must not fail the others batched with it.
            return [await asyncio.to_thread(self._score_alone, call) for call in calls]
        results, start = [], 0
        for call in calls:
            results.append(predictions[start : start + len(call)])
            start += len(call)
        return results

    def _score_alone(
        self, call: list[Complaint]
    ) -> list[Prediction] | InvalidComplaintError:
        try:
            return self.scorer.score(call)
        except InvalidComplaintError as error:
            return error

    def describe(self) -> dict:
        """What this replica serves and has done, and which heavy libraries it has loaded
        (none: the serving path never imports torch)."""
        return {
            "model_version": self.scorer.version,
            "pid": os.getpid(),
            "calls": self.calls,
            "batches": self.batches,
            "complaints": self.complaints,
            "heavy_modules": _heavy_modules(),
        }


class ReplicaScorer:
    """The ingress's scorer: `score` runs on the scorer replicas; everything else (the
    bundle, its version and threshold, explanations and embeddings for the manager's routes)
    uses the local copy of the same bundle."""

    def __init__(self, local: Scorer, handle: DeploymentHandle, timeout_s: float):
        self._local = local
        self._handle = handle
        self._timeout_s = timeout_s

    def score(self, complaints: Sequence[Complaint]) -> list[Prediction]:
        result = self._handle.score.remote(list(complaints)).result(
            timeout_s=self._timeout_s
        )
        if isinstance(result, InvalidComplaintError):
            raise result
        return result

    def __getattr__(self, name: str):
        return getattr(self._local, name)


def ingress_app(settings: Settings, bundle: str, timeout_s: float = 60.0) -> FastAPI:
    """The FastAPI app of an ingress replica, built on the replica (Ray Serve calls this)."""
    handle = serve.get_deployment_handle(SCORER_DEPLOYMENT, app_name=SCORER_APP)
    local = Scorer(bundle, threads=1, threshold=settings.escalation_threshold)
    scorer = ReplicaScorer(local, handle, timeout_s)
    # Ray Serve batches on the scorer replicas; the app's own micro-batcher would score on
    # this ingress replica's local copy instead.
    settings = settings.model_copy(update={"micro_batching": False})
    return create_app(settings, scorer=scorer, watch_registry=False)


class TriageIngress:
    """The ingress deployment's class; `serve.ingress` gives it the app's routes."""


def scorer_application(bundle: str, settings: Settings, options: RayServeOptions):
    """The scorer deployment, bound to its bundle and scaling options."""
    deployment = serve.deployment(
        ComplaintScorer,
        name=SCORER_DEPLOYMENT,
        ray_actor_options={"num_cpus": options.scorer_cpus},
        # Room for a full batch in flight plus the next one forming.
        max_ongoing_requests=2 * options.max_batch_size,
        autoscaling_config={
            "min_replicas": options.min_replicas,
            "max_replicas": options.max_replicas,
            "target_ongoing_requests": options.target_ongoing_requests,
        },
    )
    batching = {
        "max_batch_size": options.max_batch_size,
        "batch_wait_ms": options.batch_wait_ms,
    }
    threads = max(1, int(options.scorer_cpus))
    return deployment.bind(bundle, threads, settings.escalation_threshold, batching)


def ingress_application(bundle: str, settings: Settings, options: RayServeOptions):
    """The ingress deployment: the HTTP app, scoring through the scorer application."""

    # A plain function (not a partial): Ray Serve calls functions on the replica to build
    # the app there, and would take any other callable for the ASGI app itself.
    def build() -> FastAPI:
        return ingress_app(settings, bundle)

    deployment = serve.deployment(
        serve.ingress(build)(TriageIngress),
        name="TriageIngress",
        ray_actor_options={"num_cpus": options.ingress_cpus},
        max_ongoing_requests=64,
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": options.ingress_replicas,
            "target_ongoing_requests": 32,
        },
    )
    return deployment.bind()


def connect(address: str | None) -> int:
    """Join the Ray cluster at `address` (default RAY_ADDRESS, else a Ray started here);
    returns its CPUs."""
    ray.init(address=address, logging_level=logging.WARNING)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    logger.info("connected to Ray at %s: %d CPUs", address or "RAY_ADDRESS", cpus)
    return cpus


def deploy(
    bundle: str,
    settings: Settings,
    options: RayServeOptions,
    host: str,
    port: int,
    proxy_location: str = "EveryNode",
) -> None:
    """Start Serve's HTTP proxies on `host`:`port` and deploy both applications; a second
    call rolls the replicas over to `bundle` (how a new champion is served)."""
    serve.start(
        proxy_location=proxy_location, http_options={"host": host, "port": port}
    )
    serve.run(
        scorer_application(bundle, settings, options),
        name=SCORER_APP,
        route_prefix=None,
    )
    serve.run(
        ingress_application(bundle, settings, options),
        name=INGRESS_APP,
        route_prefix="/",
    )
    logger.info("serving %s on Ray Serve at http://%s:%d", bundle, host, port)


def undeploy() -> None:
    """Remove both applications (the Ray cluster and Serve's controller stay up)."""
    for name in (INGRESS_APP, SCORER_APP):
        serve.delete(name)
