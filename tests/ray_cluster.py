"""A Ray cluster of a head and a worker node on this machine, for the Ray tests.

Both nodes listen on loopback addresses of their own (127.0.0.2 and 127.0.0.3: Ray rewrites
127.0.0.1 to the machine's outward address, and two nodes need two addresses), with explicit
CPUs, a small object store, no dashboard and every port chosen free. The temp directory is
short (Unix socket paths are limited to about 107 bytes) and private to the cluster. Teardown
kills exactly the processes of this cluster, found by its temp directory and head port and
their children, never every Ray process on the machine (`ray stop` would).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
START_SECONDS = 120


@dataclass(frozen=True)
class LocalCluster:
    address: str
    temp_dir: Path
    env: dict[str, str]


def ray_env() -> dict[str, str]:
    """The environment of every Ray process a test starts: no usage reports."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def _node_ports() -> list[str]:
    return [
        *("--ray-client-server-port", str(free_port())),
        *("--dashboard-agent-listen-port", str(free_port())),
        *("--dashboard-agent-grpc-port", str(free_port())),
        *("--metrics-export-port", str(free_port())),
        *("--runtime-env-agent-port", str(free_port())),
    ]


def _ray(env: dict[str, str], *arguments: str) -> None:
    ray = Path(sys.executable).parent / "ray"
    done = subprocess.run(
        [str(ray), "start", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(arguments)} failed:\n{done.stderr}")


@contextmanager
def local_cluster(cpus_per_node: int = 1) -> Iterator[LocalCluster]:
    """Start a head and a worker node with `cpus_per_node` CPUs each; stop them after."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    port = free_port()
    # Ray's processes outlive the test run unless stopped: a SIGTERM to pytest unwinds
    # through the teardown below instead of killing pytest on the spot.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    env = ray_env()
    common = [
        *("--num-cpus", str(cpus_per_node)),
        *("--object-store-memory", "200000000"),
    ]
    try:
        _ray(
            env,
            "--head",
            *("--node-ip-address", HEAD_IP, "--port", str(port)),
            *("--temp-dir", str(temp_dir)),
            "--include-dashboard=false",
            "--disable-usage-stats",
            *common,
            *_node_ports(),
        )
        _ray(
            env,
            *("--address", f"{HEAD_IP}:{port}", "--node-ip-address", WORKER_IP),
            *common,
            *_node_ports(),
        )
        yield LocalCluster(f"{HEAD_IP}:{port}", temp_dir, env)
    finally:
        stop_cluster(temp_dir, port)
        shutil.rmtree(temp_dir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_cluster(temp_dir: Path, port: int) -> None:
    """Kill this cluster's processes: those naming its temp dir or head port, and their
    descendants (workers and actors, whose command lines Ray rewrites)."""
    marks = (str(temp_dir), f"{HEAD_IP}:{port}")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        table = _processes()
        roots = {
            pid
            for pid, (_, command) in table.items()
            if pid != os.getpid() and any(mark in command for mark in marks)
        }
        for pid in _with_descendants(roots, table):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(1.0 if sig == signal.SIGTERM else 0)


def _processes() -> dict[int, tuple[int, str]]:
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, UnicodeDecodeError, ValueError, IndexError):
            continue
        table[int(entry.name)] = (parent, command)
    return table


def _with_descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (parent, _) in table.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found
