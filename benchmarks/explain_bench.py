"""How long "why it was flagged" takes on real complaints, and how often it finishes in budget.

Usage: ``python benchmarks/explain_bench.py [--complaints 60] [--budget 2.0]`` (``make bench``).

Explains a seeded sample of real CFPB 2023 narratives with the committed default bundle,
exactly as the review page does (`triage.explain.explain`, the default time budget), and
writes `benchmarks/results/explain_bench.json`: seconds and completeness by text length, with
the machine's details. No torch is loaded.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import statistics
import time
from pathlib import Path

from machine import machine_details

from triage.explain import explain
from triage.scorer import Complaint, Scorer

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "cfpb" / "complaints_2023_with_narrative.csv.gz"
RESULTS = Path(__file__).resolve().parent / "results" / "explain_bench.json"
BUCKETS = [(0, 1000), (1000, 3000), (3000, 10_000), (10_000, 10**9)]


def sample(n: int, seed: int = 0) -> list[tuple[str, dict]]:
    with gzip.open(DATA, "rt", newline="") as handle:
        rows = [
            r for r in csv.DictReader(handle) if r["complaint_what_happened"].strip()
        ]
    picked = random.Random(seed).sample(rows, min(n, len(rows)))
    return [
        (r["complaint_what_happened"], {"company": r["company"], "state": r["state"]})
        for r in picked
    ]


def summarise(runs: list[dict]) -> dict:
    seconds = [r["seconds"] for r in runs]
    return {
        "complaints": len(runs),
        "median_chars": int(statistics.median(r["chars"] for r in runs)),
        "seconds_p50": round(statistics.median(seconds), 3),
        "seconds_max": round(max(seconds), 3),
        "complete_share": round(sum(r["complete"] for r in runs) / len(runs), 3),
        "median_units": statistics.median(r["units"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=60)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    scorer = Scorer(args.bundle)
    runs = []
    started = time.monotonic()
    for text, metadata in sample(args.complaints):
        result = explain(scorer, Complaint(text, metadata), time_budget_s=args.budget)
        runs.append(
            {
                "chars": len(text),
                "units": result.units,
                "evaluated": result.evaluated,
                "complete": result.complete,
                "seconds": result.seconds,
            }
        )

    by_length = {}
    for low, high in BUCKETS:
        inside = [r for r in runs if low <= r["chars"] < high]
        if inside:
            label = f"{low}-{high}" if high < 10**9 else f"{low}+"
            by_length[label] = summarise(inside)
    report = {
        "benchmark": "explain",
        "bundle": scorer.version,
        "budget_seconds": args.budget,
        "all": summarise(runs),
        "by_chars": by_length,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine_details(["onnxruntime", "numpy", "tokenizers"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"all": report["all"], "by_chars": by_length}, indent=2))


if __name__ == "__main__":
    main()
