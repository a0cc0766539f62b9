"""HTTP-level speed: a live `triage serve` under closed- and open-loop load on loopback.

Usage: ``python benchmarks/http_bench.py [--seconds 30] [--rate 40]`` (``make bench``).

Starts the real server on the committed default bundle with its own SQLite database and an
unlimited caller key, and measures:

- cold start: from starting the process to the first 200 from /readyz;
- closed loop at concurrency 1, 8 and 32: each client sends its next request when the last one
  answers (throughput, latency percentiles, errors);
- open loop at `--rate` requests per second with Poisson arrivals: requests leave on a schedule
  whatever the server does, and latency counts from the scheduled time, so a stalled server
  cannot hide its queue (coordinated omission);
- the server's RSS before and after, and `/readyz`'s micro-batching counters.

Then the same closed loops on a second server with micro-batching off, for the comparison. The
texts are real CFPB test-period narratives of at most 128 tokens, sent as single `/v1/triage`
requests without recording. The load generator is this process, on the same 2 cores as the
server: its own CPU time is reported, and the figures are a floor for the server alone.

Writes `benchmarks/results/http_bench.json`; headline figures are `http.open_loop_40rps` and
`http.concurrency_8`.
"""

from __future__ import annotations

import argparse
import asyncio
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
from corpus import REPO, short_complaints
from machine import machine_details

RESULTS = Path(__file__).resolve().parent / "results" / "http_bench.json"
TRIAGE = Path(sys.executable).with_name("triage")
CONCURRENCY = (1, 8, 32)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Server:
    """`triage serve` in a subprocess with its own data folder and an unlimited key."""

    def __init__(self, bundle: Path, folder: Path, **settings: str) -> None:
        self.env = {
            **os.environ,
            "TRIAGE_MODEL_DIR": str(bundle),
            "TRIAGE_DATA_DIR": str(folder),
            "TRIAGE_LOG_LEVEL": "WARNING",
            "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
            **{f"TRIAGE_{k.upper()}": v for k, v in settings.items()},
        }
        self.key = self._key()
        self.port = 8000 + random.Random().randint(1000, 9000)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.cold_start_s = self._start()

    def _key(self) -> str:
        created = subprocess.run(
            [str(TRIAGE), "keys", "create", "--role", "caller", "--name", "bench"]
            + ["--rate-limit", "0"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return created.stdout.strip()

    def _start(self) -> float:
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(TRIAGE), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        while time.monotonic() < started + 60:
            try:
                if httpx.get(f"{self.base}/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.process.kill()
        raise RuntimeError(f"the server did not start; see {self.log}")

    def details(self) -> dict:
        return httpx.get(f"{self.base}/readyz").json()["details"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def summary(latencies: list[float], errors: int, seconds: float) -> dict:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


async def closed_loop(
    server: Server, texts: list[str], concurrency: int, seconds: float
) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client_loop(index: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        sent = 0
        while time.monotonic() < stop:
            text = texts[(index * 7919 + sent) % len(texts)]
            started = time.perf_counter()
            try:
                response = await client.post("/v1/triage", json={"text": text})
                errors += response.status_code != 200
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            sent += 1

    async with _client(server, concurrency) as client:
        started = time.monotonic()
        await asyncio.gather(*(client_loop(i, client) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return summary(latencies, errors, elapsed)


async def open_loop(
    server: Server, texts: list[str], rate: float, seconds: float
) -> dict:
    """Poisson arrivals at `rate`; latency from each request's scheduled send time."""
    arrivals = np.cumsum(
        np.random.default_rng(0).exponential(1 / rate, int(rate * seconds))
    )
    latencies: list[float] = []
    errors = 0

    async def one(i: int, due: float, start: float, client: httpx.AsyncClient) -> None:
        nonlocal errors
        try:
            response = await client.post(
                "/v1/triage", json={"text": texts[i % len(texts)]}
            )
            errors += response.status_code != 200
        except httpx.HTTPError:
            errors += 1
        latencies.append(time.perf_counter() - (start + due))

    async with _client(server, 256) as client:
        start = time.perf_counter()
        tasks = []
        for i, due in enumerate(arrivals):
            delay = start + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due, start, client)))
        await asyncio.gather(*tasks)
    result = summary(latencies, errors, float(arrivals[-1]))
    result["offered_rate"] = rate
    return result


def _client(server: Server, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=connections),
    )


def measure_server(
    server: Server, texts: list[str], seconds: float, rate: float | None
) -> dict:
    asyncio.run(closed_loop(server, texts, 8, min(seconds, 5)))  # warm-up
    rss_before = rss_mb(server.process.pid)
    cpu_before = time.process_time()
    started = time.monotonic()

    result: dict = {"cold_start_s": round(server.cold_start_s, 2)}
    for concurrency in CONCURRENCY:
        result[f"concurrency_{concurrency}"] = asyncio.run(
            closed_loop(server, texts, concurrency, seconds)
        )
    if rate is not None:
        result[f"open_loop_{rate:g}rps"] = asyncio.run(
            open_loop(server, texts, rate, seconds)
        )

    wall = time.monotonic() - started
    result["generator_cpu_share"] = round((time.process_time() - cpu_before) / wall, 2)
    result["rss_before_mb"] = round(rss_before, 1)
    result["rss_after_mb"] = round(rss_mb(server.process.pid), 1)
    result["server"] = {
        k: server.details()[k]
        for k in ("threads", "max_concurrent_runs", "cpus_available", "micro_batching")
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--texts", type=int, default=210)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    texts = short_complaints(args.texts)
    runs = {}
    for name, settings in (
        ("http", {}),
        ("http_without_micro_batching", {"micro_batching": "false"}),
    ):
        with tempfile.TemporaryDirectory() as scratch:
            server = Server(args.bundle, Path(scratch), **settings)
            try:
                rate = args.rate if name == "http" else None
                runs[name] = measure_server(server, texts, args.seconds, rate)
            finally:
                server.stop()

    with_batching, without = runs["http"], runs["http_without_micro_batching"]
    report = {
        "benchmark": "http_bench",
        "bundle": str(args.bundle),
        "texts": len(texts),
        "seconds_per_load": args.seconds,
        **runs,
        "micro_batching_gain": {
            f"concurrency_{c}": round(
                with_batching[f"concurrency_{c}"]["requests_per_s"]
                / max(without[f"concurrency_{c}"]["requests_per_s"], 1e-9),
                2,
            )
            for c in CONCURRENCY
        },
        "note": "the load generator runs on the same cores as the server",
        "machine": machine_details(["onnxruntime", "fastapi", "uvicorn", "httpx"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
