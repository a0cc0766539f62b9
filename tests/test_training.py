"""Training arguments, checkpoints and resume, and the export gate, on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_small_spec
from training.args import TrainingArguments
from training.export import (
    ExportGateError,
    check_gate,
    export_onnx,
    fp32_parity,
    int8_agreement,
    load_run,
)
from training.finetune import CHECKPOINT, train
from training.tiny import write_tiny_base_model


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("train")
    return write_small_spec(folder, rows=120), write_tiny_base_model(folder / "base")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("warmup_ratio", 1.5, "warmup_ratio must be in [0, 1), got 1.5"),
        ("epochs", 0, "epochs must be at least 1, got 0"),
        ("max_tokens", 1024, "max_tokens must be between 48 and 512, got 1024"),
        (
            "chunk_overlap",
            46,
            "chunk_overlap must be between 0 and 45 for max_tokens 128",
        ),
        ("metadata_dropout", -0.1, "metadata_dropout must be in [0, 1], got -0.1"),
    ],
)
def test_arguments_are_range_checked(small, field, value, message):
    spec, _ = small
    with pytest.raises(
        ValueError,
        match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)"),
    ):
        TrainingArguments(spec=str(spec), output_dir="x", **{field: value})


def test_missing_spec_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no dataset spec at"):
        TrainingArguments(spec=str(tmp_path / "none.toml"), output_dir="x")


def _arguments(small, output: Path, **overrides) -> TrainingArguments:
    spec, base = small
    options = {
        "epochs": 2,
        "batch_size": 16,
        "threads": 1,
        "checkpoint_every": 1,
        "patience": 5,
    }
    return TrainingArguments(
        spec=str(spec),
        output_dir=str(output),
        base_model=str(base),
        **(options | overrides),
    )


def test_an_interrupted_run_resumes_where_it_stopped(small, tmp_path, monkeypatch):
    steps = {"n": 0}
    original = torch.optim.AdamW.step

    def crash_after_seven(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 8:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    output = tmp_path / "run"
    monkeypatch.setattr(torch.optim.AdamW, "step", crash_after_seven)
    with pytest.raises(KeyboardInterrupt):
        train(_arguments(small, output))
    monkeypatch.setattr(torch.optim.AdamW, "step", original)

    saved = torch.load(output / CHECKPOINT, weights_only=False)
    assert saved["state"]["global_step"] == 7 and not saved["state"]["finished"]

    with pytest.raises(FileExistsError, match="pass --resume"):
        train(_arguments(small, output))
    train(_arguments(small, output), resume=True)

    history = json.loads((output / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    final = torch.load(output / CHECKPOINT, weights_only=False)["state"]
    assert final["finished"] and final["global_step"] == 2 * -(-84 // 16)
    assert (output / "best.pt").exists()


def test_resume_without_a_run_says_so(small, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(_arguments(small, tmp_path / "empty"), resume=True)


def test_the_gate_measures_parity_and_refuses_out_of_bounds_graphs(
    small, tmp_path, tiny_bundle
):
    from training.data import load_dataset
    from triage.datasets import load_spec
    from triage.scorer import Scorer
    from triage.text import ComplaintEncoder, load_tokenizer

    run = train(_arguments(small, tmp_path / "run", epochs=1))
    model, args, labels = load_run(run)
    encoder = ComplaintEncoder(
        load_tokenizer(run / "tokenizer.json"),
        args.max_tokens,
        args.chunk_overlap,
        labels["metadata_keys"],
    )
    data = load_dataset(load_spec(Path(args.spec)))

    export_onnx(model, tmp_path / "fp32.onnx")
    assert fp32_parity(model, tmp_path / "fp32.onnx", encoder, data) < 1e-4

    # A graph exported from perturbed weights is caught.
    with torch.no_grad():
        for parameter in model.category_head.parameters():
            noise = np.random.default_rng(0).normal(0, 1, parameter.shape)
            parameter.add_(torch.from_numpy(noise).float())
    export_onnx(model, tmp_path / "other.onnx")
    model, *_ = load_run(run)
    assert fp32_parity(model, tmp_path / "other.onnx", encoder, data) > 0.1

    # The same graph on both sides agrees exactly.
    scorer = Scorer(tiny_bundle)
    agreement = int8_agreement(scorer, scorer, data)
    assert agreement["int8_argmax_agreement"] == 1.0
    assert agreement["int8_max_abs_probability_diff"] == 0.0


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (
            {"fp32_max_abs_logit_diff": 1e-3},
            "fp32 ONNX differs from torch by 1.00e-03 in a logit",
        ),
        (
            {"int8_argmax_agreement": 0.98},
            "int8 argmax agrees with fp32 on only 98.00% of complaints",
        ),
        ({"int8_max_abs_probability_diff": 0.06}, "int8 moves a probability by 0.060"),
        ({"int8_macro_f1_drop": 0.03}, "int8 loses 0.030 macro-F1"),
    ],
)
def test_check_gate_enforces_each_bound(report, message):
    passing = {
        "fp32_max_abs_logit_diff": 1e-6,
        "int8_argmax_agreement": 1.0,
        "int8_max_abs_probability_diff": 0.01,
        "int8_macro_f1_drop": 0.0,
    }
    assert check_gate(passing, enforce=True)["passed"]
    with pytest.raises(ExportGateError, match=re.escape(message)):
        check_gate(passing | report, enforce=True)
    recorded = check_gate(passing | report, enforce=False)
    assert not recorded["passed"] and recorded["failures"] == [message]
