"""Model-level throughput: the triage scorer against a transformers pipeline and TF-IDF.

Usage: ``python benchmarks/model_bench.py [--texts 210] [--rounds 3]`` (``make bench``).

Every system scores the same real CFPB test-period narratives of at most 128 tokens. Each runs in
a worker process of its own (torch and onnxruntime in one process slow each other down), and the
workers take turns pass by pass, round after round, so machine drift hits each alike:

- triage: the committed default bundle (int8 ONNX, with its TF-IDF blend) through
  `triage.Scorer`: one complaint per call on all cores, 32 per call, and the service's layout
  (one single-threaded run per core, complaints sent one per call from as many threads);
- pipeline: `transformers.pipeline("text-classification")` on the same MiniLM architecture in
  PyTorch fp32 with a head of the category head's shape (speed does not depend on the weights,
  so this needs no training), given the whole list at batch sizes 1, 8, 16 and 32;
- tfidf: scikit-learn TF-IDF + logistic regression fitted on the train split.

After the rounds the triage worker measures what larger graph runs would trade: throughput and
the largest probability shift against scoring alone, at 1, 4 and 16 chunks per run.

Writes `benchmarks/results/model_bench.json` with the machine's details; the headline figures
are `ratio_vs_pipeline.batch_1` and `ratio_vs_pipeline.batched` (triage's best layout against
the pipeline's best batch size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from corpus import REPO, short_complaints
from machine import machine_details

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results" / "model_bench.json"
BUNDLE = REPO / "models" / "default"
PIPELINE_BATCHES = (1, 8, 16, 32)
RUN_ROWS = (1, 4, 16)


def triage_passes(texts: list[str]) -> dict[str, Callable[[], None]]:
    from triage.cpu import available_cpus
    from triage.scorer import Complaint, Scorer

    cpus = available_cpus()
    together = Scorer(BUNDLE, threads=cpus)
    per_core = Scorer(BUNDLE, threads=1, max_concurrent_runs=cpus)
    pool = ThreadPoolExecutor(cpus)
    complaints = [Complaint(t) for t in texts]

    def one_by_one() -> None:
        for complaint in complaints:
            together.score([complaint])

    def batch_32() -> None:
        for i in range(0, len(complaints), 32):
            together.score(complaints[i : i + 32])

    def runs_per_core() -> None:
        list(pool.map(lambda c: per_core.score([c]), complaints))

    return {
        "triage_b1": one_by_one,
        "triage_b32": batch_32,
        "triage_per_core": runs_per_core,
    }


def pipeline_passes(texts: list[str]) -> dict[str, Callable[[], None]]:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        pipeline,
    )

    from training.model import base_model_dir
    from triage.bundle import load_bundle

    base = base_model_dir()
    labels = len(load_bundle(BUNDLE).manifest.categories)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base), num_labels=labels
    )
    classify = pipeline(
        "text-classification",
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(str(base)),
        device="cpu",
    )
    return {
        f"pipeline_b{size}": lambda size=size: classify(
            texts, batch_size=size, truncation=True, max_length=128
        )
        for size in PIPELINE_BATCHES
    }


def tfidf_passes(texts: list[str]) -> dict[str, Callable[[], None]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from training.data import load_dataset
    from triage.datasets import load_spec

    train = load_dataset(load_spec(REPO / "data" / "specs" / "cfpb.toml")).splits[
        "train"
    ]
    keep = [i for i, y in enumerate(train["category"]) if y >= 0]
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=2000),
    )
    model.fit([train["text"][i] for i in keep], [train["category"][i] for i in keep])

    def one_by_one() -> None:
        for text in texts:
            model.predict_proba([text])

    def batch_32() -> None:
        for i in range(0, len(texts), 32):
            model.predict_proba(texts[i : i + 32])

    return {"tfidf_b1": one_by_one, "tfidf_b32": batch_32}


def run_rows_study(texts: list[str]) -> list[dict]:
    """Throughput and the largest shift against scoring alone, by chunks per graph run."""
    from triage.scorer import Complaint, Scorer

    scorer = Scorer(BUNDLE, max_batch_tokens=1 << 20)
    labels = scorer.bundle.manifest.categories
    alone = [scorer.probabilities([Complaint(t)]) for t in texts]
    rows = []
    for size in RUN_ROWS:
        scorer.chunk_batch = size
        started = time.perf_counter()
        predictions = [
            p
            for i in range(0, len(texts), 32)
            for p in scorer.score([Complaint(t) for t in texts[i : i + 32]])
        ]
        seconds = time.perf_counter() - started
        shifts = []
        for p, (escalation, category) in zip(predictions, alone, strict=True):
            shifts.append(abs(p.escalation.probability - escalation[0]))
            shifts.extend(
                abs(s.probability - category[0][labels.index(s.label)])
                for s in p.category.top
            )
        rows.append(
            {
                "chunks_per_run": size,
                "texts_per_s": len(texts) / seconds,
                "max_probability_shift": float(max(shifts)),
            }
        )
    return rows


WORKERS = {"triage": triage_passes, "pipeline": pipeline_passes, "tfidf": tfidf_passes}


def worker(system: str, corpus: Path) -> None:
    """Answer one JSON line per request on stdin: a timed pass, or the run-rows study."""
    # Answers go to the original stdout; anything libraries print goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    texts = json.loads(corpus.read_text())
    passes = WORKERS[system](texts)
    for fn in passes.values():  # warm-up
        fn()
    print(json.dumps({"ready": list(passes)}), file=answers, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("study"):
            answer = {"run_rows": run_rows_study(texts)}
        else:
            started = time.perf_counter()
            passes[request["pass"]]()
            answer = {"texts_per_s": len(texts) / (time.perf_counter() - started)}
        print(json.dumps(answer), file=answers, flush=True)


class Worker:
    def __init__(self, system: str, corpus: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", system, "--corpus", str(corpus)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.passes: list[str] = self._answer()["ready"]

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("a benchmark worker exited; its error is printed above")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def measure(texts: list[str], rounds: int) -> tuple[dict[str, float], list[dict]]:
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "texts.json"
        corpus.write_text(json.dumps(texts))
        workers = [Worker(system, corpus) for system in WORKERS]
        try:
            runs: dict[str, list[float]] = {}
            for _ in range(rounds):
                for w in workers:
                    for name in w.passes:
                        answer = w.ask({"pass": name})
                        runs.setdefault(name, []).append(answer["texts_per_s"])
            study = workers[0].ask({"study": True})["run_rows"]
        finally:
            for w in workers:
                w.close()
    return {name: float(np.median(v)) for name, v in runs.items()}, study


def report(texts: list[str], rounds: int) -> dict:
    medians, study = measure(texts, rounds)
    pipeline = {size: medians[f"pipeline_b{size}"] for size in PIPELINE_BATCHES}
    best_size = max(pipeline, key=pipeline.get)
    layouts = ("triage_b32", "triage_per_core")
    best_layout = max(layouts, key=medians.get)
    return {
        "benchmark": "model_bench",
        "texts": len(texts),
        "max_tokens": 128,
        "rounds": rounds,
        "machine": machine_details(
            ["onnxruntime", "torch", "transformers", "scikit-learn"]
        ),
        "texts_per_s": medians,
        "pipeline_best_batch": best_size,
        "triage_best_layout": best_layout,
        "ratio_vs_pipeline": {
            "batch_1": medians["triage_b1"] / medians["pipeline_b1"],
            "batched": medians[best_layout] / pipeline[best_size],
        },
        "ratio_tfidf_vs_triage": {
            "batch_1": medians["tfidf_b1"] / medians["triage_b1"]
        },
        "run_rows": study,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=210)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.corpus)
        return

    texts = short_complaints(args.texts)
    result = report(texts, args.rounds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    speeds = result["texts_per_s"]
    print(f"{len(texts)} real CFPB complaints of <= 128 tokens, median texts/s")
    for name, value in speeds.items():
        print(f"  {name:18s} {value:8.1f}")
    ratio = result["ratio_vs_pipeline"]
    print(
        f"ratio vs pipeline: batch 1 {ratio['batch_1']:.2f}x, batched {ratio['batched']:.2f}x "
        f"({result['triage_best_layout']} against pipeline batch {result['pipeline_best_batch']})"
    )
    for row in result["run_rows"]:
        print(
            f"  {row['chunks_per_run']:2d} chunks per run: {row['texts_per_s']:.1f} texts/s, "
            f"largest shift {row['max_probability_shift']:.3f}"
        )
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
