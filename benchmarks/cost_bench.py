"""Cost: texts per second against token length, next to the machine's compute ceiling.

Usage: ``python benchmarks/cost_bench.py [--texts 60]`` (``make bench``).

For each window length the default bundle's graph scores real CFPB narratives cut to exactly
that many tokens, one per run as the service does: on all cores in one run, and with one
single-threaded run per core side by side. The ceiling is what the graph's arithmetic would allow
at the measured peak of a large matrix product on the same cores: int8 (onnxruntime's
MatMulInteger) for the quantized layers, fp32 (MatMul) for the layers kept in fp32. FLOPs per
token are read from the graph's weight shapes, plus self-attention's 4 x length x hidden.

The fp32 layers set that ceiling, so the script also quantizes them on a copy of the graph and
measures the speed alone (`what_if_all_int8`); whether the model's scores would survive it is
for the export gate to decide, with the fp32 checkpoint, and is not measured here.

Writes `benchmarks/results/cost_bench.json`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from corpus import REPO, TOKENIZER, test_period_complaints
from machine import machine_details
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

RESULTS = Path(__file__).resolve().parent / "results" / "cost_bench.json"
MODEL = REPO / "models" / "default" / "model.onnx"
LENGTHS = (32, 64, 96, 128)
INT8_OPS = {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


def flops_per_token(model: onnx.ModelProto, length: int) -> dict[str, float]:
    """Multiply-add FLOPs per token of the encoder, split into int8 and fp32 work."""
    weights = {i.name: tuple(i.dims) for i in model.graph.initializer}
    int8 = fp32 = 0.0
    hidden = None
    for node in model.graph.node:
        shape = next((weights[n] for n in node.input if n in weights), None)
        if node.op_type == "QAttention" and shape is not None:
            int8 += 2.0 * shape[0] * shape[1]
            hidden = shape[0]
            fp32 += 4.0 * length * hidden  # scores and context, per token
        elif node.op_type in INT8_OPS and shape is not None and len(shape) == 2:
            int8 += 2.0 * shape[0] * shape[1]
        elif node.op_type == "MatMul" and shape is not None and len(shape) == 2:
            fp32 += 2.0 * shape[0] * shape[1]
    return {"int8": int8, "fp32": fp32}


def _session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def peak_flops(kind: str, threads: int, m: int = 2048, k: int = 1536, n: int = 384):
    """FLOPs per second of one large matrix product, median of five."""
    rng = np.random.default_rng(0)
    if kind == "int8":
        a_type, out = TensorProto.UINT8, TensorProto.INT32
        a = rng.integers(0, 255, (m, k), dtype=np.uint8)
        b = rng.integers(-127, 127, (k, n), dtype=np.int8)
        op = "MatMulInteger"
    else:
        a_type = out = TensorProto.FLOAT
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        op = "MatMul"
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["c"])],
        "peak",
        [helper.make_tensor_value_info("a", a_type, [m, k])],
        [helper.make_tensor_value_info("c", out, [m, n])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, threads)
    session.run(None, {"a": a})
    times = []
    for _ in range(5):
        started = time.perf_counter()
        session.run(None, {"a": a})
        times.append(time.perf_counter() - started)
    return 2.0 * m * k * n / float(np.median(times))


def all_int8(model: onnx.ModelProto, folder: Path) -> onnx.ModelProto:
    """The graph with its remaining fp32 weight products quantized too (speed only)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights = {i.name for i in model.graph.initializer}
    fp32 = [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and any(i in weights for i in n.input)
    ]
    source, target = folder / "model.onnx", folder / "all-int8.onnx"
    onnx.save(model, str(source))
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        nodes_to_quantize=fp32,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    return onnx.load(str(target))


def windows(texts: list[str], length: int) -> list[np.ndarray]:
    """Token ids of real complaints cut to exactly `length` ([CLS] ... [SEP])."""
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    out = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        if len(encoding.ids) >= length - 2:
            out.append(np.array([cls, *encoding.ids[: length - 2], sep], np.int64))
    return out


def texts_per_second(
    sessions: list[ort.InferenceSession], rows: list[np.ndarray]
) -> float:
    def run(i: int) -> None:
        ids = rows[i][None, :]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        sessions[i % len(sessions)].run(None, feed)

    with ThreadPoolExecutor(len(sessions)) as pool:
        list(pool.map(run, range(min(8, len(rows)))))  # warm-up
        started = time.perf_counter()
        list(pool.map(run, range(len(rows))))
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=60)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    from triage.cpu import available_cpus

    cpus = available_cpus()
    model = onnx.load(str(MODEL))
    peaks = {kind: peak_flops(kind, cpus) for kind in ("int8", "fp32")}
    all_cores = [_session(model, cpus)]
    per_core = [_session(model, 1) for _ in range(cpus)]
    with tempfile.TemporaryDirectory() as scratch:
        quantized = all_int8(model, Path(scratch))
    per_core_int8 = [_session(quantized, 1) for _ in range(cpus)]
    texts = test_period_complaints()

    rows = []
    for length in LENGTHS:
        cut = windows(texts, length)[: args.texts]
        flops = flops_per_token(model, length)
        seconds_per_text = sum(length * flops[k] / peaks[k] for k in flops)
        measured = {
            "one_run_all_cores": texts_per_second(all_cores, cut),
            "one_run_per_core": texts_per_second(per_core, cut),
        }
        best = max(measured.values())
        what_if = texts_per_second(per_core_int8, cut)
        rows.append(
            {
                "tokens": length,
                "texts": len(cut),
                "texts_per_s": measured,
                "gflops_per_text": round(length * sum(flops.values()) / 1e9, 3),
                "ceiling_texts_per_s": 1.0 / seconds_per_text,
                "fraction_of_ceiling": best * seconds_per_text,
                "what_if_all_int8": {
                    "texts_per_s": what_if,
                    "ratio_to_one_run_per_core": what_if / measured["one_run_per_core"],
                },
            }
        )
        print(
            f"{length:4d} tokens: {best:6.1f} texts/s of a ceiling of "
            f"{1 / seconds_per_text:6.1f} ({100 * best * seconds_per_text:.0f} %)"
        )

    result = {
        "benchmark": "cost_bench",
        "cpus": cpus,
        "peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
        "flops_per_token_at_128": flops_per_token(model, 128),
        "lengths": rows,
        "machine": machine_details(["onnxruntime", "numpy"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"peak: int8 {peaks['int8'] / 1e9:.0f} GFLOP/s, fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s "
        f"on {cpus} cores; results: {args.output}"
    )


if __name__ == "__main__":
    main()
