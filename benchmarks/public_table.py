"""Render the public-benchmark results (from `triage evaluate`) as the tables of
docs/benchmarks-public.md.

Usage: ``python benchmarks/public_table.py docs/results/public-banking77.json ...``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SIDES = {
    "model": "triage model as served (int8 ONNX)",
    "encoder": "fine-tuned encoder alone (int8 ONNX)",
    "baseline": "TF-IDF + LR baseline",
}


def rows(report: dict) -> list[str]:
    """One table row per side and condition: accuracy, macro-F1 and calibration error."""
    lines = []
    conditions = [("with_metadata", "")]
    if report.get("metadata_keys"):
        conditions = [
            ("with_metadata", ", text + metadata"),
            ("text_only", ", text only"),
        ]
    for condition, suffix in conditions:
        for side, name in SIDES.items():
            if side not in report:
                continue
            metrics = (
                report[side]
                if condition == "with_metadata"
                else report[side]["text_only"]
            )
            category = metrics["category"]
            lines.append(
                f"| {name}{suffix} | {category['accuracy']:.3f} | {category['macro_f1']:.3f} "
                f"| {category['ece']:.3f} |"
            )
    return lines


def table(path: Path) -> str:
    report = json.loads(path.read_text())
    head = [
        f"{report['dataset']}: {report['split']['rows']} test rows, model {report['model_version']}",
        "",
        "| model | accuracy | macro-F1 | ECE (top label) |",
        "|---|---|---|---|",
    ]
    return "\n".join(head + rows(report))


if __name__ == "__main__":
    print("\n\n".join(table(Path(p)) for p in sys.argv[1:]))
