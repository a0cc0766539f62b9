"""Merge concurrent scoring requests into shared graph runs.

Each HTTP request is handled on its own thread. Alone, every request would pay a graph run of
its own, with Python overhead around it, and many requests would wait on the same few cores.
The batcher keeps a queue of encoded requests and a few runner threads (one per run the CPUs can
do at once). A free runner takes what is queued, up to `max_batch_tokens` of text, and scores it
in one `Scorer.score_encoded` call, so batches form by themselves under load while a lone request
waits for no one. `max_wait` lets a runner hold on briefly for more requests; it trades latency
for larger batches and is off by default.

Requests are only merged with requests for the same scorer, so a hot swap never mixes model
versions in one answer. A request's complaints are checked before it is queued: a bad complaint
fails its own request and never its batch mates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from triage.scorer import Complaint, EncodedComplaints, Prediction, Scorer

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    scorer: Scorer
    encoded: EncodedComplaints
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    """Counters shown in /readyz: how much merging really happens."""

    batches: int = 0
    requests: int = 0
    complaints: int = 0
    largest_batch: int = 0

    def as_dict(self) -> dict:
        mean = self.requests / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "requests": self.requests,
            "complaints": self.complaints,
            "mean_requests_per_batch": round(mean, 2),
            "largest_batch": self.largest_batch,
        }


class BatcherStopped(RuntimeError):
    """The batcher was stopped before this request was scored."""


class MicroBatcher:
    """Score requests from many threads in merged batches.

    Args:
        runners: batches scored at the same time; each runner thread runs one at a time.
        max_batch_tokens: a runner stops adding requests once their tokens would pass this
            (a single larger request still runs, alone).
        max_wait: seconds a runner waits for more requests before scoring a partial batch.
    """

    def __init__(
        self, runners: int, max_batch_tokens: int = 2048, max_wait: float = 0.0
    ) -> None:
        if runners < 1:
            raise ValueError(f"runners must be at least 1, got {runners}")
        self.runners = runners
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.stats = BatchStats()
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._run, name=f"triage-runner-{i}", daemon=True)
            for i in range(runners)
        ]
        for thread in self._threads:
            thread.start()
        logger.info(
            "micro-batching with %d runners, up to %d tokens a batch, waiting %.1f ms",
            runners,
            max_batch_tokens,
            max_wait * 1000,
        )

    def score(
        self, scorer: Scorer, complaints: Sequence[Complaint]
    ) -> list[Prediction]:
        """Predictions for `complaints`, scored with whatever else is queued; blocks."""
        pending = _Pending(scorer, scorer.encode(complaints))
        with self._ready:
            if self._stopped:
                raise BatcherStopped("the service is shutting down")
            self._queue.append(pending)
            self._ready.notify()
        return pending.future.result()

    def stop(self) -> None:
        """Finish nothing new: fail what is queued and end the runner threads."""
        with self._ready:
            self._stopped = True
            left = list(self._queue)
            self._queue.clear()
            self._ready.notify_all()
        for pending in left:
            pending.future.set_exception(BatcherStopped("the service is shutting down"))
        for thread in self._threads:
            thread.join(timeout=5)

    def details(self) -> dict:
        return {
            "runners": self.runners,
            "max_batch_tokens": self.max_batch_tokens,
            "max_wait_ms": self.max_wait * 1000,
            **self.stats.as_dict(),
        }

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._score(batch)

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for work, then take queued requests for one scorer up to the token budget."""
        with self._ready:
            while not self._queue and not self._stopped:
                self._ready.wait()
            if self._stopped:
                return None

            batch = [self._queue.popleft()]
            deadline = time.monotonic() + self.max_wait
            while True:
                self._take_more(batch)
                left = deadline - time.monotonic()
                if self._full(batch) or left <= 0 or self._stopped:
                    return batch
                self._ready.wait(left)

    def _take_more(self, batch: list[_Pending]) -> None:
        tokens = sum(p.encoded.tokens for p in batch)
        scorer = batch[0].scorer
        kept: deque[_Pending] = deque()
        while self._queue:
            pending = self._queue.popleft()
            fits = tokens + pending.encoded.tokens <= self.max_batch_tokens
            if pending.scorer is scorer and fits:
                batch.append(pending)
                tokens += pending.encoded.tokens
            else:
                kept.append(pending)
        self._queue.extendleft(reversed(kept))

    def _full(self, batch: list[_Pending]) -> bool:
        return sum(p.encoded.tokens for p in batch) >= self.max_batch_tokens

    def _score(self, batch: list[_Pending]) -> None:
        try:
            results = batch[0].scorer.score_encoded([p.encoded for p in batch])
        except Exception as error:  # every waiting request must hear of a failed run
            logger.exception("scoring a batch of %d requests failed", len(batch))
            for pending in batch:
                pending.future.set_exception(error)
            return

        self._count(batch)
        for pending, predictions in zip(batch, results, strict=True):
            pending.future.set_result(predictions)

    def _count(self, batch: list[_Pending]) -> None:
        complaints = sum(len(p.encoded.complaints) for p in batch)
        with self._ready:
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.complaints += complaints
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
