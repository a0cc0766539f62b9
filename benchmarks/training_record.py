"""Record a public-benchmark fine-tune beside its results: the arguments it ran with, the
validation score after each epoch, and when it ran.

Usage: ``python benchmarks/training_record.py RUN OUTPUT --started T --finished T``
(benchmarks/public_sets.sh calls it after training, with the times it stamped).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def record(run: Path, started: str, finished: str) -> dict:
    """What docs/benchmarks-public.md says about a run, from the files the run wrote."""
    history_file = run / "history.json"
    if not history_file.exists():
        raise SystemExit(f"{run} has no history.json: its first epoch never finished")
    history = json.loads(history_file.read_text())
    return {
        "run": str(run),
        "arguments": json.loads((run / "args.json").read_text()),
        "epochs_done": len(history),
        "validation_history": history,
        "started": started,
        "finished": finished,
        "machine": {"processor": _processor(), "python": platform.python_version()},
    }


def _processor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--started", required=True)
    parser.add_argument("--finished", required=True)
    options = parser.parse_args()
    result = record(options.run, options.started, options.finished)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"training record written to {options.output}")


if __name__ == "__main__":
    main()
