"""The machine a benchmark ran on: CPU model and vector flags, cores, Python, package versions."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def machine_details(packages: list[str]) -> dict:
    info = {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in cpuinfo
            if line.startswith("model name")
        )
        flags = next(
            line.split(":", 1)[1].split()
            for line in cpuinfo
            if line.startswith("flags")
        )
        info["cpu_flags"] = sorted(
            f for f in flags if f.startswith(("avx", "fma", "sse4", "amx", "vnni"))
        )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    info["versions"] = {name: _version(name) for name in packages}
    return info


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None
