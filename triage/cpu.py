"""How many CPUs this process may really use: the affinity mask, capped by a cgroup quota.

`os.cpu_count()` reports the machine's CPUs even inside a container limited to fewer; sizing
onnxruntime by it oversubscribes the cores the container actually gets.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """CPUs available to this process (at least 1)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    count = count or os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def _cgroup_quota() -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` quota, None when unlimited or unknown."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)
