"""Soak: a live server under closed-loop load on loopback, then proof that nothing was lost.

Usage: ``python benchmarks/soak.py [--minutes 10] [--requests 100000] [--concurrency 32]``
(``make soak``): the load lasts until both the minutes and the request count are reached.

Starts `triage serve` on the committed default bundle with its own SQLite database, creates an
unlimited caller key, and keeps `--concurrency` requests in flight for `--minutes`: real CFPB
narratives, one request in ten stored as a case. Before and after the load it sends the whole
bad-input table (tests/bad_inputs.py) and counts server errors. At the end it checks that every
case the server said it recorded is in the database. The load generator shares the machine's
cores with the server, so throughput here is a floor, not the server's capacity.

Writes `benchmarks/results/soak.json`: requests, errors, latency percentiles, RSS before and
after, cases recorded and missing, bad inputs tried and their 5xx count, machine details.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from corpus import token_counts
from machine import machine_details

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.bad_inputs import bad_inputs  # noqa: E402

DATA = REPO / "data" / "cfpb" / "complaints_2023_with_narrative.csv.gz"
RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
TRIAGE = Path(sys.executable).with_name("triage")


def texts(n: int = 500, max_tokens: int | None = None) -> list[str]:
    """`n` real narratives, of at most `max_tokens` tokens if given."""
    with gzip.open(DATA, "rt", newline="") as handle:
        rows = [r["complaint_what_happened"] for r in csv.DictReader(handle)]
    rows = [t for t in rows if t.strip()]
    if max_tokens is not None:
        rows = [
            t for t, c in zip(rows, token_counts(rows), strict=True) if c <= max_tokens
        ]
    return random.Random(0).sample(rows, min(n, len(rows)))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(bundle: Path, folder: Path, port: int) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(bundle),
        "TRIAGE_DATA_DIR": str(folder),
        "TRIAGE_LOG_LEVEL": "WARNING",
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),  # as `make serve`
    }
    created = subprocess.run(
        [
            str(TRIAGE),
            "keys",
            "create",
            "--role",
            "admin",
            "--name",
            "soak",
            "--rate-limit",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(TRIAGE), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server, created.stdout.strip()
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server did not start; see {folder / 'server.log'}")


def send_bad_inputs(base: str, key: str) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    server_errors = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        table = bad_inputs()
        for name, method, path, kwargs in table:
            response = client.request(method, path, follow_redirects=False, **kwargs)
            if response.status_code >= 500:
                server_errors.append(name)
    return {
        "tried": len(table),
        "server_errors": len(server_errors),
        "which": server_errors,
    }


async def load(
    base: str,
    key: str,
    seconds: float,
    concurrency: int,
    corpus: list[str],
    min_requests: int = 0,
):
    latencies: list[float] = []
    errors: dict[str, int] = {}
    recorded: list[str] = []
    until = time.monotonic() + seconds

    def going() -> bool:
        return time.monotonic() < until or len(latencies) < min_requests

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency)

    async def worker(index: int, client: httpx.AsyncClient) -> None:
        sent = 0
        while going():
            body = {"text": corpus[(index * 7919 + sent) % len(corpus)]}
            if sent % 10 == 0:
                body["case_id"] = f"soak-{index}-{sent}"
            started = time.perf_counter()
            try:
                response = await client.post("/v1/triage", json=body)
                ok = response.status_code == 200
                if ok and "case_id" in body and response.json().get("recorded"):
                    recorded.append(body["case_id"])
                if not ok:
                    errors[str(response.status_code)] = (
                        errors.get(str(response.status_code), 0) + 1
                    )
            except httpx.HTTPError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            latencies.append(time.perf_counter() - started)
            sent += 1

    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=60, limits=limits
    ) as client:
        await asyncio.gather(*(worker(i, client) for i in range(concurrency)))
    return latencies, errors, recorded


def missing_cases(base: str, key: str, recorded: list[str]) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        total = client.get("/v1/cases", params={"limit": 1}).json()["total"]
        sample = random.Random(1).sample(recorded, min(200, len(recorded)))
        absent = sum(client.get(f"/v1/cases/{c}").status_code != 200 for c in sample)
    return max(len(recorded) - total, 0) + absent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--requests", type=int, default=0, help="least requests in the measured load"
    )
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds before measuring"
    )
    parser.add_argument(
        "--max-tokens", type=int, help="send only narratives this short (default: all)"
    )
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        port = 8000 + random.Random().randint(1000, 9000)
        server, key = start_server(args.bundle, Path(scratch), port)
        base = f"http://127.0.0.1:{port}"
        try:
            before_bad = send_bad_inputs(base, key)
            corpus = texts(max_tokens=args.max_tokens)
            load_before = os.getloadavg()[0]
            # Warm-up: every text once or more, so shapes first seen are not counted as growth.
            asyncio.run(load(base, key, args.warmup, args.concurrency, corpus))
            rss_start = rss_mb(server.pid)
            started = time.monotonic()
            latencies, errors, recorded = asyncio.run(
                load(
                    base,
                    key,
                    args.minutes * 60,
                    args.concurrency,
                    corpus,
                    args.requests,
                )
            )
            elapsed = time.monotonic() - started
            rss_end = rss_mb(server.pid)
            load_after = os.getloadavg()[0]
            after_bad = send_bad_inputs(base, key)
            missing = missing_cases(base, key, recorded)
            alive = httpx.get(f"{base}/healthz").status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=30)

    ms = np.array(latencies) * 1000
    report = {
        "benchmark": "soak",
        "bundle": str(args.bundle),
        "minutes": args.minutes,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "warmup_seconds": args.warmup,
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
        "cases_recorded": len(recorded),
        "cases_missing": missing,
        "bad_inputs": {"before_load": before_bad, "after_load": after_bad},
        "alive_after": alive,
        "note": "the load generator runs on the same cores as the server",
        "load_average_1min": {"before": load_before, "after": load_after},
        "machine": machine_details(["onnxruntime", "fastapi", "uvicorn", "httpx"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
