"""Bundles fail at load time, naming the file and what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from triage.bundle import load_bundle
from triage.errors import BundleError
from triage.scorer import Scorer


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_manifest_round_trips(tiny_bundle: Path):
    bundle = load_bundle(tiny_bundle)
    assert bundle.version == "tiny-test"
    assert bundle.manifest.categories[0] == "credit_reporting"
    assert bundle.manifest.escalation and bundle.manifest.threshold is not None
    assert bundle.manifest.gate["fp32_max_abs_logit_diff"] <= 1e-4


def test_missing_directory():
    with pytest.raises(
        BundleError, match="is not a directory: pass the path of a bundle"
    ):
        load_bundle("/nonexistent/bundle")


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "manifest.json"])
def test_missing_file_is_named(bundle_copy: Path, name: str):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=f"lacks {name}"):
        load_bundle(bundle_copy)


def test_corrupt_manifest(bundle_copy: Path):
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest.json is not valid JSON"):
        load_bundle(bundle_copy)


def test_incompatible_manifest(bundle_copy: Path):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        load_bundle(bundle_copy)


def test_corrupt_graph_names_the_file(bundle_copy: Path):
    (bundle_copy / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(BundleError, match=r"model.onnx: onnxruntime cannot load it"):
        Scorer(bundle_copy)


def test_corrupt_tokenizer_names_the_file(bundle_copy: Path):
    (bundle_copy / "tokenizer.json").write_text("[]")
    with pytest.raises(
        BundleError, match=r"tokenizer.json: not a readable tokenizer.json"
    ):
        Scorer(bundle_copy)


def test_label_count_must_match_graph(bundle_copy: Path):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["categories"] = manifest["categories"][:3]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match="category head has 7 outputs, the manifest lists 3"
    ):
        Scorer(bundle_copy)
