"""Model-level throughput: the triage scorer against a transformers pipeline and TF-IDF.

Usage: ``python benchmarks/model_bench.py [--texts 200] [--rounds 3]`` (``make bench``).

All three score the same real CFPB test-split narratives of at most 128 tokens, in one process,
in alternating rounds so that machine drift hits each alike:

- triage: the committed default bundle (int8 ONNX, chunking, blend) through `triage.Scorer`;
- pipeline: `transformers.pipeline("text-classification")` on the same MiniLM architecture in
  PyTorch fp32 with a head of the category head's shape (speed does not depend on the weights,
  so this needs no training), at batch 1 and at its best batch size among 1, 8, 16 and 32;
- tfidf: scikit-learn TF-IDF + logistic regression fitted on the train split.

Results go to `benchmarks/results/model_bench.json` with the machine's details; the headline
figures are `ratio_vs_pipeline` at batch 1 and batched. torch and onnxruntime share this
process, which is known to hurt onnxruntime's tail latency: the figures are conservative for
triage.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from machine import machine_details

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "model_bench.json"


def machine() -> dict:
    return machine_details(["onnxruntime", "torch", "transformers", "scikit-learn"])


def load_texts(n: int) -> tuple[list[str], list[str], list[int]]:
    """Test-split narratives of at most 128 tokens, and the train split for the TF-IDF fit."""
    from training.data import load_dataset
    from training.model import base_model_dir
    from triage.datasets import load_spec
    from triage.text import load_tokenizer

    data = load_dataset(load_spec(REPO / "data" / "specs" / "cfpb.toml"))
    tokenizer = load_tokenizer(base_model_dir() / "tokenizer.json")
    short = [
        t for t in data.splits["test"]["text"] if len(tokenizer.encode(t).ids) <= 128
    ]
    train = data.splits["train"]
    return short[:n], train["text"], train["category"]


def timed(fn, texts: list[str], batch: int) -> float:
    """Texts per second for scoring `texts` in batches of `batch`."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        fn(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from training.model import base_model_dir
    from triage.scorer import Complaint, Scorer

    texts, train_texts, train_labels = load_texts(args.texts)
    threads = torch.get_num_threads()

    scorer = Scorer(REPO / "models" / "default", threads=threads)
    base = base_model_dir()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base), num_labels=len(scorer.bundle.manifest.categories)
    )
    classify = pipeline(
        "text-classification",
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(str(base)),
        device="cpu",
    )
    keep = [i for i, y in enumerate(train_labels) if y >= 0]
    tfidf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=2000),
    )
    tfidf.fit([train_texts[i] for i in keep], [train_labels[i] for i in keep])

    systems = {
        "triage": lambda batch: scorer.score([Complaint(t) for t in batch]),
        "tfidf": lambda batch: tfidf.predict_proba(batch),
    }
    for size in (1, 8, 16, 32):
        systems[f"pipeline_b{size}"] = lambda batch, size=size: classify(
            batch, batch_size=size, truncation=True, max_length=128
        )
    batches = {"triage": (1, 32), "tfidf": (1, 32)}

    # Warm up every system once, then alternate rounds.
    for fn in systems.values():
        fn(texts[:8])
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, fn in systems.items():
            if name.startswith("pipeline"):
                size = int(name.removeprefix("pipeline_b"))
                runs.setdefault(name, []).append(timed(fn, texts, size))
            else:
                for size in batches[name]:
                    runs.setdefault(f"{name}_b{size}", []).append(
                        timed(fn, texts, size)
                    )

    medians = {name: float(np.median(values)) for name, values in runs.items()}
    pipeline_sizes = {size: medians[f"pipeline_b{size}"] for size in (1, 8, 16, 32)}
    best_size = max(pipeline_sizes, key=pipeline_sizes.get)
    result = {
        "benchmark": "model_bench",
        "texts": len(texts),
        "rounds": args.rounds,
        "torch_threads": threads,
        "machine": machine(),
        "texts_per_s": medians,
        "pipeline_best_batch": best_size,
        "ratio_vs_pipeline": {
            "batch_1": medians["triage_b1"] / medians["pipeline_b1"],
            "batched": medians["triage_b32"] / pipeline_sizes[best_size],
        },
        "ratio_tfidf_vs_triage": {
            "batch_1": medians["tfidf_b1"] / medians["triage_b1"]
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"{len(texts)} real CFPB complaints of <= 128 tokens, {args.rounds} alternating rounds, median texts/s"
    )
    print("| system | batch 1 | batched |")
    print("|---|---|---|")
    print(
        f"| triage (int8 ONNX) | {medians['triage_b1']:.1f} | {medians['triage_b32']:.1f} (32) |"
    )
    print(
        f"| transformers pipeline (fp32) | {medians['pipeline_b1']:.1f} | {pipeline_sizes[best_size]:.1f} ({best_size}) |"
    )
    print(
        f"| TF-IDF + LR | {medians['tfidf_b1']:.1f} | {medians['tfidf_b32']:.1f} (32) |"
    )
    print(
        f"ratio vs pipeline: batch 1 {result['ratio_vs_pipeline']['batch_1']:.2f}x, batched {result['ratio_vs_pipeline']['batched']:.2f}x"
    )
    print(f"results: {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
