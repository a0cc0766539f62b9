"""Record evaluation results in a bundle: the manifest's `metrics` and a short model card."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from training.evaluate import markdown_table
from triage.bundle import CARD_FILE, load_bundle, write_manifest


def machine_summary() -> str:
    """CPU model and core count, for every figure that depends on the machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def record_evaluation(bundle_dir: Path, report: dict) -> None:
    """Store `report` (from `evaluate_bundle`) in the manifest and rewrite MODEL_CARD.md."""
    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    manifest.metrics = {
        "split": "test",
        "evaluated_at": report["evaluated_at"],
        "escalation_label": report["escalation_label"],
        "machine": machine_summary(),
        "model": report["model"],
        "baseline": report["baseline"],
    }
    if "encoder" in report:
        manifest.metrics["encoder"] = report["encoder"]
    write_manifest(bundle_dir, manifest)
    (bundle_dir / CARD_FILE).write_text(model_card(manifest, report), encoding="utf-8")


def model_card(manifest, report: dict) -> str:
    rows = manifest.dataset.get("rows", {})
    proxy = manifest.escalation_proxy
    lines = [
        f"# Model card: {manifest.version}",
        "",
        f"- Base model: {manifest.base_model}, fine-tuned with one shared encoder and two heads.",
        f"- Data: {manifest.dataset.get('attribution', manifest.dataset.get('spec'))}; temporal split "
        f"train {rows.get('train')} / validation {rows.get('validation')} / test {rows.get('test')} complaints.",
        f"- Category labels: {', '.join(manifest.categories) or 'none (escalation only)'}.",
        f"- Escalation label: {'a proxy: ' + proxy if proxy else 'none (category only)'}.",
        f"- Inputs: the text, plus these metadata keys when a caller sends them: "
        f"{', '.join(manifest.metadata_keys) or 'none'}. Other keys are ignored.",
        f"- Window: {manifest.max_tokens} tokens; longer texts are scored in chunks overlapping by "
        f"{manifest.chunk_overlap} tokens, combined as the {manifest.chunk_aggregation}.",
        f"- Served graph: ONNX, {manifest.quantization}; temperatures {manifest.temperatures.model_dump()}; "
        f"default threshold {manifest.threshold} ({manifest.threshold_rule}).",
        "",
        "## Test-split results against the TF-IDF + logistic regression baseline",
        "",
        markdown_table(report),
        "",
        f"Measured by `triage evaluate` on {machine_summary()}.",
        "",
        "## Limits",
        "",
        "- The escalation label is CFPB's company response, not a manager's decision: it says whether "
        "the company granted relief. Which company answered decides much of it.",
        "- The 2023 data spans about four weeks (almost all June 2023): the temporal split tests a few "
        "weeks of drift, not a year of it.",
        "- Trained on US consumer-finance complaints in English; other domains need retraining.",
        "",
    ]
    return "\n".join(lines)
