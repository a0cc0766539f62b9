"""Write the README's performance section from the saved benchmark results.

Usage: ``python benchmarks/report.py [--check]`` (``make bench`` runs it last).

Reads `benchmarks/results/{model_bench,cost_bench,http_bench,soak}.json`, renders the targets
with what was measured and whether each is met, and replaces the README between the
`performance:start` and `performance:end` markers, and the soak figures of the reliability
section between `soak:start` and `soak:end`. `--check` only compares, and fails when the
README no longer matches the results (a test runs it), so the README cannot drift from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
START, END = "<!-- performance:start -->", "<!-- performance:end -->"
SOAK_START, SOAK_END = "<!-- soak:start -->", "<!-- soak:end -->"


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def machine_line(machine: dict) -> str:
    flags = ", ".join(
        f
        for f in machine.get("cpu_flags", [])
        if f in ("avx2", "avx512_vnni", "amx_int8")
    )
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    return f"{machine['cpu']}, {machine['usable_cores']} cores ({flags}); {versions}"


def yes(met: bool) -> str:
    return "met" if met else "**not met**"


def targets(model: dict, cost: dict, http: dict, soak: dict) -> list[str]:
    at_128 = next(row for row in cost["lengths"] if row["tokens"] == 128)
    best_128 = max(at_128["texts_per_s"].values())
    open_loop = http["http"]["open_loop_40rps"]
    closed_8 = http["http"]["concurrency_8"]
    ratio = model["ratio_vs_pipeline"]["batched"]
    rows = [
        (
            "throughput against the transformers pipeline",
            "≥ 3.0x",
            f"{ratio:.2f}x",
            ratio >= 3.0,
        ),
        (
            "texts per second at 128 tokens",
            "≥ 70",
            f"{best_128:.1f} (ceiling {at_128['ceiling_texts_per_s']:.0f})",
            best_128 >= 70,
        ),
        (
            "open loop at 40 requests/s: p50 / p99 / errors",
            "≤ 20 ms / ≤ 80 ms / 0",
            f"{open_loop['p50_ms']:.1f} ms / {open_loop['p99_ms']:.1f} ms / {open_loop['errors']}",
            open_loop["p50_ms"] <= 20
            and open_loop["p99_ms"] <= 80
            and open_loop["errors"] == 0,
        ),
        (
            "closed loop at concurrency 8",
            "≥ 60 requests/s",
            f"{closed_8['requests_per_s']:.1f} requests/s",
            closed_8["requests_per_s"] >= 60,
        ),
        (
            f"serving RSS over {soak['requests']:,} requests (soak)",
            "≤ 400 MB, growth < 10 % over 100,000",
            f"{soak['rss_end_mb']:.0f} MB, {soak['rss_growth_pct']:+.1f} %",
            soak["rss_end_mb"] <= 400
            and soak["rss_growth_pct"] < 10
            and soak["requests"] >= 100_000,
        ),
        (
            "cold start to ready",
            "≤ 2 s",
            f"{http['http']['cold_start_s']:.1f} s",
            http["http"]["cold_start_s"] <= 2,
        ),
    ]
    lines = ["| target | goal | measured | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {yes(d)} |" for a, b, c, d in rows]
    return lines


def model_table(model: dict) -> list[str]:
    speeds = model["texts_per_s"]
    best = model["pipeline_best_batch"]
    lines = [
        "| system | one complaint per call | batched |",
        "|---|---|---|",
        f"| triage, int8 ONNX, one run per core (the service's layout) | – | "
        f"{speeds['triage_per_core']:.1f} |",
        f"| triage, int8 ONNX, all cores in one run | {speeds['triage_b1']:.1f} | "
        f"{speeds['triage_b32']:.1f} (32 per call) |",
        f"| transformers pipeline, fp32 | {speeds['pipeline_b1']:.1f} | "
        f"{speeds[f'pipeline_b{best}']:.1f} (best batch size: {best}) |",
        f"| TF-IDF + logistic regression | {speeds['tfidf_b1']:.1f} | "
        f"{speeds['tfidf_b32']:.1f} (32 per call) |",
    ]
    ratio = model["ratio_vs_pipeline"]
    lines += [
        "",
        f"triage is {ratio['batch_1']:.2f}x the pipeline one complaint at a time and "
        f"{ratio['batched']:.2f}x at each one's best; TF-IDF is "
        f"{model['ratio_tfidf_vs_triage']['batch_1']:.0f}x faster than triage and "
        'weaker (see "How good is it").',
        "",
        "What larger graph runs would trade (one run holds several chunks; int8 dynamic "
        "quantization then scales their activations together):",
        "",
        "| chunks per run | texts/s | largest probability shift against scoring alone |",
        "|---|---|---|",
    ]
    lines += [
        f"| {row['chunks_per_run']} | {row['texts_per_s']:.1f} | "
        f"{row['max_probability_shift']:.3f} |"
        for row in model["run_rows"]
    ]
    return lines


def cost_table(cost: dict) -> list[str]:
    peaks = cost["peak_gflops"]
    lines = [
        "| tokens | texts/s, one run per core | texts/s, one run on all cores | "
        "ceiling | share of ceiling | texts/s if all layers were int8 (speed only) |",
        "|---|---|---|---|---|---|",
    ]
    for row in cost["lengths"]:
        speeds = row["texts_per_s"]
        what_if = row["what_if_all_int8"]
        lines.append(
            f"| {row['tokens']} | {speeds['one_run_per_core']:.1f} | "
            f"{speeds['one_run_all_cores']:.1f} | {row['ceiling_texts_per_s']:.0f} | "
            f"{100 * row['fraction_of_ceiling']:.0f} % | {what_if['texts_per_s']:.1f} "
            f"({what_if['ratio_to_one_run_per_core']:.2f}x) |"
        )
    flops = cost["flops_per_token_at_128"]
    lines += [
        "",
        f"Measured peaks on these cores: int8 {peaks['int8']:.0f} GFLOP/s, fp32 "
        f"{peaks['fp32']:.0f} GFLOP/s. At 128 tokens a token costs "
        f"{flops['int8'] / 1e6:.1f} MFLOP of int8 work and {flops['fp32'] / 1e6:.1f} MFLOP "
        "of fp32 work (the feed-forward down-projections, kept in fp32 by the int8 gate, "
        "and attention), so the fp32 part sets the ceiling. The last column quantizes those "
        "layers on a copy of the graph to show what they cost; the export gate, which needs "
        "the fp32 checkpoint, decides whether the scores survive it.",
    ]
    return lines


def http_table(http: dict) -> list[str]:
    on, off = http["http"], http["http_without_micro_batching"]
    lines = [
        "| load | requests/s | p50 ms | p95 ms | p99 ms | errors | requests/s without "
        "micro-batching |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in (1, 8, 32):
        a, b = on[f"concurrency_{c}"], off[f"concurrency_{c}"]
        lines.append(
            f"| closed loop, concurrency {c} | {a['requests_per_s']:.1f} | {a['p50_ms']:.1f} | "
            f"{a['p95_ms']:.1f} | {a['p99_ms']:.1f} | {a['errors']} | "
            f"{b['requests_per_s']:.1f} |"
        )
    o = on["open_loop_40rps"]
    lines.append(
        f"| open loop, Poisson, 40 requests/s | {o['requests_per_s']:.1f} | {o['p50_ms']:.1f} | "
        f"{o['p95_ms']:.1f} | {o['p99_ms']:.1f} | {o['errors']} | – |"
    )
    batching = on["server"]["micro_batching"]
    lines += [
        "",
        f"The server ran {on['server']['max_concurrent_runs']} model runs at once with "
        f"{on['server']['threads']} onnxruntime thread each; micro-batching merged "
        f"{batching['mean_requests_per_batch']:.2f} requests a batch on average (largest "
        f"{batching['largest_batch']}). The load generator shares the 2 cores and used "
        f"{100 * on['generator_cpu_share']:.0f} % of one core; RSS went from "
        f"{on['rss_before_mb']:.0f} MB to {on['rss_after_mb']:.0f} MB.",
    ]
    return lines


def _other_jobs(soak: dict) -> str:
    busy = soak["load_average_1min"]["before"] > soak["machine"]["usable_cores"]
    return " and with other jobs, which the load average shows" if busy else ""


def _lengths(soak: dict) -> str:
    if soak.get("max_tokens"):
        return f"of at most {soak['max_tokens']} tokens"
    return "of every length"


def soak_section(soak: dict) -> str:
    """The reliability section's soak figures."""
    bad = soak["bad_inputs"]
    rows = [
        (
            "load",
            f"{soak['requests']:,} requests in "
            f"{soak['requests'] / soak['requests_per_s'] / 60:.0f} minutes after a "
            f"{soak['warmup_seconds']:g} s warm-up, {soak['concurrency']} concurrent clients, "
            f"real CFPB narratives {_lengths(soak)}, one in ten recorded as a case",
        ),
        ("errors", f"**{soak['errors']}**"),
        (
            "cases recorded / missing",
            f"{soak['cases_recorded']:,} / **{soak['cases_missing']}**",
        ),
        (
            "bad inputs before / after the load, answered with a 5xx",
            f"{bad['before_load']['tried']} tried, {bad['before_load']['server_errors']} / "
            f"{bad['after_load']['tried']} tried, {bad['after_load']['server_errors']}",
        ),
        (
            "latency p50 / p99 at the throughput reached",
            f"{soak['p50_ms']:,.0f} ms / {soak['p99_ms']:,.0f} ms at "
            f"{soak['requests_per_s']} requests/s (32 clients queue on 2 cores shared with the "
            f"load generator{_other_jobs(soak)}; 1-minute load average "
            f"{soak['load_average_1min']['before']:.1f} before, "
            f"{soak['load_average_1min']['after']:.1f} after)",
        ),
        (
            "server memory (RSS) after warm-up / at the end",
            f"{soak['rss_start_mb']:.0f} MB / {soak['rss_end_mb']:.0f} MB "
            f"({soak['rss_growth_pct']:+.1f} %)",
        ),
    ]
    lines = [
        SOAK_START,
        "<!-- Generated by `python benchmarks/report.py` from benchmarks/results/soak.json. -->",
        "",
        f"Soak (`make soak`) on {machine_line(soak['machine'])}:",
        "",
        "| what | result |",
        "|---|---|",
        *(f"| {a} | {b} |" for a, b in rows),
        SOAK_END,
    ]
    return "\n".join(lines)


def section() -> str:
    model, cost = load("model_bench"), load("cost_bench")
    http, soak = load("http_bench"), load("soak")
    lines = [
        START,
        "<!-- Generated by `python benchmarks/report.py` from benchmarks/results/*.json; "
        "edit that script, not this text. -->",
        "",
        f"Machine: {machine_line(model['machine'])}. Texts: real CFPB test-period complaints "
        f"of at most {model['max_tokens']} tokens ({model['texts']} of them).",
        "",
        *targets(model, cost, http, soak),
        "",
        "**Model level** (`benchmarks/model_bench.py`: median texts/s over "
        f"{model['rounds']} alternating rounds, each system in its own process):",
        "",
        *model_table(model),
        "",
        "**Cost against token length** (`benchmarks/cost_bench.py`: one text per run, texts "
        "cut to the length):",
        "",
        *cost_table(cost),
        "",
        f"**HTTP** (`benchmarks/http_bench.py`: {http['seconds_per_load']:.0f} s per load, "
        "`POST /v1/triage` on loopback):",
        "",
        *http_table(http),
        END,
    ]
    return "\n".join(lines)


def replace_between(text: str, start: str, end: str, block: str) -> str:
    if start not in text or end not in text:
        sys.exit(f"{README} has no {start} ... {end} markers to write between")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return before + block + after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    readme = README.read_text()
    updated = replace_between(readme, START, END, section())
    updated = replace_between(updated, SOAK_START, SOAK_END, soak_section(load("soak")))
    if args.check:
        if updated != readme:
            sys.exit(
                "README.md's performance section differs from benchmarks/results: run "
                "`python benchmarks/report.py`"
            )
        return
    README.write_text(updated)
    print(f"wrote the performance section of {README}")


if __name__ == "__main__":
    main()
