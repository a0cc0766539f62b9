"""Micro-batching: merged requests get their own answers, bad input stays with its request,
and on the real bundle a complaint's score barely moves with its batch mates."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.batching import BatcherStopped, MicroBatcher
from serving.settings import Settings
from tests.conftest import DEFAULT_BUNDLE, authorise
from triage.errors import InvalidComplaintError
from triage.scorer import Complaint, Scorer


@pytest.fixture
def batcher():
    batcher = MicroBatcher(runners=1, max_batch_tokens=4096, max_wait=0.05)
    yield batcher
    batcher.stop()


def _escalation(predictions) -> list[float]:
    return [p.escalation.probability for p in predictions]


def test_concurrent_requests_are_merged_and_answered_in_order(
    tiny_scorer: Scorer, real_complaints: list[str], batcher: MicroBatcher
):
    requests = [[Complaint(t)] for t in real_complaints[:8]]
    requests.append([Complaint(t) for t in real_complaints[8:11]])
    alone = [tiny_scorer.score(r) for r in requests]

    with ThreadPoolExecutor(len(requests)) as pool:
        merged = list(pool.map(lambda r: batcher.score(tiny_scorer, r), requests))

    assert batcher.stats.batches < len(requests)
    assert batcher.stats.requests == len(requests)
    for got, expected in zip(merged, alone, strict=True):
        assert len(got) == len(expected)
        np.testing.assert_allclose(_escalation(got), _escalation(expected), atol=0.02)


def test_a_bad_request_fails_alone(
    tiny_scorer: Scorer, real_complaints: list[str], batcher: MicroBatcher
):
    with pytest.raises(InvalidComplaintError, match="no readable text"):
        batcher.score(tiny_scorer, [Complaint(real_complaints[0]), Complaint("  ")])
    [good] = batcher.score(tiny_scorer, [Complaint(real_complaints[0])])
    assert 0 <= good.escalation.probability <= 1


def test_requests_for_different_models_are_not_merged(
    tiny_scorer: Scorer, flagging_scorer: Scorer, real_complaints: list[str]
):
    batcher = MicroBatcher(runners=1, max_batch_tokens=4096, max_wait=0.05)
    start = threading.Barrier(6)

    def one(i: int):
        scorer = tiny_scorer if i % 2 else flagging_scorer
        start.wait()
        return scorer, batcher.score(scorer, [Complaint(real_complaints[i])])

    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(one, range(6)))
    finally:
        batcher.stop()
    assert batcher.stats.batches >= 2
    for scorer, [prediction] in answers:
        assert prediction.escalation.threshold == scorer.threshold


def test_a_failed_run_reaches_every_waiting_request(
    tiny_scorer: Scorer, real_complaints: list[str], monkeypatch, batcher
):
    def broken(_requests):
        raise RuntimeError("onnxruntime failed")

    monkeypatch.setattr(tiny_scorer, "score_encoded", broken)
    with ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(batcher.score, tiny_scorer, [Complaint(t)])
            for t in real_complaints[:3]
        ]
        for future in futures:
            with pytest.raises(RuntimeError, match="onnxruntime failed"):
                future.result(timeout=30)


def test_a_stopped_batcher_refuses_new_requests(tiny_scorer: Scorer):
    batcher = MicroBatcher(runners=1)
    batcher.stop()
    with pytest.raises(BatcherStopped):
        batcher.score(tiny_scorer, [Complaint("My card was charged twice.")])


def test_the_service_batches_and_shows_it_in_readiness(
    tiny_bundle, tmp_path, real_complaints: list[str]
):
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path, batch_wait_ms=20)
    with TestClient(create_app(settings)) as client:
        authorise(client)
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda t: client.post("/v1/triage", json={"text": t}),
                    real_complaints[:16],
                )
            )
        details = client.get("/readyz").json()["details"]

    assert all(a.status_code == 200 for a in answers)
    batching = details["micro_batching"]
    assert batching["requests"] == 16
    assert batching["batches"] <= 16
    assert details["threads"] >= 1


def test_a_request_during_shutdown_gets_503(tiny_bundle, tmp_path):
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        authorise(client)
        client.app.state.batcher.stop()
        answer = client.post("/v1/triage", json={"text": "I was charged twice."})
    assert answer.status_code == 503
    assert "shutting down" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "1"


def test_micro_batching_can_be_switched_off(tiny_bundle, tmp_path):
    settings = Settings(model_dir=tiny_bundle, data_dir=tmp_path, micro_batching=False)
    with TestClient(create_app(settings)) as client:
        authorise(client)
        answer = client.post("/v1/triage", json={"text": "I was charged twice."})
        details = client.get("/readyz").json()["details"]
    assert answer.status_code == 200
    assert details["micro_batching"] is None


@pytest.mark.slow
def test_batch_mates_move_a_score_by_at_most_two_points():
    """int8 dynamic quantization scales each run's activations together: with the default run
    layout a complaint's score must not depend on what it was merged with."""
    import gzip

    import pandas as pd

    from tests.conftest import CFPB_2023

    with gzip.open(CFPB_2023, "rt") as handle:
        texts = pd.read_csv(handle, dtype=str, keep_default_na=False)
    texts = [t for t in texts["complaint_what_happened"].tolist() if t.strip()]
    texts = random.Random(7).sample(texts, 160)

    scorer = Scorer(DEFAULT_BUNDLE, threads=1)
    alone = [scorer.probabilities([Complaint(t)]) for t in texts]
    alone_escalation = np.array([e[0] for e, _ in alone])
    alone_category = np.stack([c[0] for _, c in alone])

    shuffled = list(range(len(texts)))
    random.Random(3).shuffle(shuffled)
    encoded = [scorer.encode([Complaint(texts[i])]) for i in shuffled]
    merged = [
        p
        for start in range(0, len(encoded), 32)
        for request in scorer.score_encoded(encoded[start : start + 32])
        for p in request
    ]
    labels = scorer.bundle.manifest.categories
    shifts = []
    for position, i in enumerate(shuffled):
        answer = merged[position]
        shifts.append(abs(answer.escalation.probability - alone_escalation[i]))
        shifts.extend(
            abs(shown.probability - alone_category[i, labels.index(shown.label)])
            for shown in answer.category.top
        )
    assert max(shifts) <= 0.02
