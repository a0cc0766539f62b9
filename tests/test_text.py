"""Chunking and metadata encoding: every text token is scored, windows respect the limit."""

from __future__ import annotations

import pytest

from training.model import base_model_dir
from triage.text import (
    MAX_PREFIX_TOKENS,
    ComplaintEncoder,
    load_tokenizer,
    metadata_prefix,
)


@pytest.fixture(scope="module")
def encoder() -> ComplaintEncoder:
    tokenizer = load_tokenizer(base_model_dir() / "tokenizer.json")
    return ComplaintEncoder(
        tokenizer, max_tokens=64, overlap=8, metadata_keys=["company", "state"]
    )


def test_metadata_prefix_keeps_declared_keys_in_order_and_skips_empty():
    metadata = {"state": "TX", "company": "Acme Bank", "agent": "Bob", "tags": ""}
    assert (
        metadata_prefix(metadata, ["company", "state", "tags"])
        == "company: Acme Bank | state: TX"
    )
    assert metadata_prefix(None, ["company"]) == ""
    assert metadata_prefix({"company": None}, ["company"]) == ""


def test_short_text_is_one_window(encoder):
    chunks = encoder.chunks(["I was charged twice."])
    assert len(chunks) == 1
    assert (
        chunks[0].input_ids[0] == encoder.cls_id
        and chunks[0].input_ids[-1] == encoder.sep_id
    )


@pytest.mark.parametrize("words", [30, 61, 62, 200, 1000])
@pytest.mark.parametrize("metadata", [None, {"company": "Acme Bank", "state": "TX"}])
def test_long_text_windows_cover_every_token_within_the_limit(encoder, words, metadata):
    text = " ".join(f"word{i}" for i in range(words))
    expected = encoder.tokenizer.encode(text, add_special_tokens=False).ids
    chunks = encoder.chunks([text], [metadata])

    assert all(len(c.input_ids) <= encoder.max_tokens for c in chunks)
    covered = []
    for chunk in chunks:
        text_part = [
            t
            for t, kind in zip(chunk.input_ids, chunk.token_type_ids, strict=True)
            if kind == (1 if metadata else 0)
        ]
        body = text_part[:-1] if metadata else text_part[1:-1]
        covered.append(body)
    # Consecutive windows share exactly `overlap` tokens and together rebuild the text.
    rebuilt = covered[0] + [
        t for window in covered[1:] for t in window[encoder.overlap :]
    ]
    assert rebuilt[: len(expected)] == expected
    assert len(rebuilt) >= len(expected)
    assert sum(c.text_tokens for c in chunks) >= len(expected)


def test_metadata_goes_in_the_first_segment(encoder):
    chunk = encoder.chunks(["late fee"], [{"company": "Acme"}])[0]
    first = [
        t
        for t, kind in zip(chunk.input_ids, chunk.token_type_ids, strict=True)
        if kind == 0
    ]
    assert encoder.tokenizer.decode(first) == "company : acme"


def test_prefix_is_capped(encoder):
    chunk = encoder.chunks(["late fee"], [{"company": "x " * 200}])[0]
    assert chunk.token_type_ids.count(0) == MAX_PREFIX_TOKENS + 2


def test_pad_marks_padding(encoder):
    batch = encoder.pad(
        encoder.chunks(["short", "a somewhat longer complaint text here"])
    )
    assert batch.input_ids.shape == batch.attention_mask.shape
    assert batch.attention_mask[0].sum() < batch.attention_mask[1].sum()
    assert (batch.input_ids[0][batch.attention_mask[0] == 0] == encoder.pad_id).all()


def test_window_too_small_is_refused():
    tokenizer = load_tokenizer(base_model_dir() / "tokenizer.json")
    with pytest.raises(ValueError, match="max_tokens must be at least"):
        ComplaintEncoder(tokenizer, max_tokens=20, overlap=0)
