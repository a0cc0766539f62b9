"""What similar-case search costs: embedding cases with the serving model, and exact cosine
search over indexes of growing size.

Usage: ``python benchmarks/similar_bench.py [--complaints 64] [--sizes 1000,10000,100000,300000]``
(``make bench``).

Embeds a seeded sample of real CFPB 2023 narratives with the committed default bundle exactly
as the similar-cases index does (`serving.similar.embed`, batches of its size), then times
`triage.neighbours.NeighbourIndex` on random vectors of the model's width: building it in one
update, its memory, and the latency of one k=5 query. Writes
`benchmarks/results/similar_bench.json` with the machine's details. No torch is loaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from explain_bench import sample
from machine import machine_details

from serving.similar import EMBED_BATCH, embed
from triage.neighbours import NeighbourIndex
from triage.scorer import Scorer

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "similar_bench.json"


def embedding_rate(scorer: Scorer, texts: list[str]) -> dict:
    """Texts per second through the graph, in the index's batch size."""
    embed(scorer, texts[:2])  # warm-up: the first run allocates
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        vectors = embed(scorer, texts[start : start + EMBED_BATCH])
    seconds = time.perf_counter() - started
    return {
        "complaints": len(texts),
        "median_chars": int(statistics.median(len(t) for t in texts)),
        "seconds": round(seconds, 2),
        "texts_per_second": round(len(texts) / seconds, 1),
        "dimensions": int(vectors.shape[1]),
    }


def search_costs(size: int, dimensions: int, queries: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, dimensions), dtype=np.float32)
    index = NeighbourIndex()
    started = time.perf_counter()
    index.upsert([f"case-{i}" for i in range(size)], vectors)
    build = time.perf_counter() - started
    latencies = []
    for query in rng.standard_normal((queries, dimensions), dtype=np.float32):
        started = time.perf_counter()
        index.search(query, 5, exclude={"case-0"})
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "cases": size,
        "matrix_mb": round(size * dimensions * 4 / 2**20, 1),
        "build_seconds": round(build, 3),
        "query_ms_p50": round(statistics.median(latencies), 2),
        "query_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=64)
    parser.add_argument("--sizes", default="1000,10000,100000,300000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    scorer = Scorer(args.bundle)
    embedding = embedding_rate(scorer, [text for text, _ in sample(args.complaints)])
    sizes = [int(size) for size in args.sizes.split(",")]
    search = [search_costs(s, embedding["dimensions"], args.queries) for s in sizes]
    report = {
        "benchmark": "similar",
        "bundle": scorer.version,
        "embedding": embedding,
        "search": search,
        "machine": machine_details(["onnxruntime", "numpy", "tokenizers"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"embedding": embedding, "search": search}, indent=2))


if __name__ == "__main__":
    main()
