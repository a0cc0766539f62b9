"""The ONNX scorer on the tiny bundle: batching, chunking, metadata, category-only bundles."""

from __future__ import annotations

import numpy as np
import pytest

from triage.errors import InvalidComplaintError
from triage.scorer import Complaint, Scorer


def test_prediction_shape(tiny_scorer: Scorer):
    [prediction] = tiny_scorer.score(
        [Complaint("They charged me twice and refuse to refund.")]
    )
    assert prediction.model_version == "tiny-test"
    assert 0.0 <= prediction.escalation.probability <= 1.0
    assert prediction.escalation.flagged == (
        prediction.escalation.probability >= prediction.escalation.threshold
    )
    assert prediction.category.label in tiny_scorer.bundle.manifest.categories
    assert prediction.category.top[0].label == prediction.category.label
    assert len(prediction.category.top) == 3
    assert prediction.chunks == 1


def test_batch_equals_one_by_one(tiny_scorer: Scorer, real_complaints: list[str]):
    complaints = [Complaint(t) for t in real_complaints[:12]]
    together = tiny_scorer.score(complaints)
    alone = [tiny_scorer.score([c])[0] for c in complaints]
    for a, b in zip(together, alone, strict=True):
        assert a.escalation.probability == pytest.approx(
            b.escalation.probability, abs=0.02
        )
        assert (
            a.category.label == b.category.label
            or abs(a.category.probability - b.category.probability) < 0.02
        )


def test_long_text_is_chunked_not_cut(tiny_scorer: Scorer, real_complaints: list[str]):
    long_text = " ".join(real_complaints[:10])
    [prediction] = tiny_scorer.score([Complaint(long_text)])
    tokens = len(
        tiny_scorer.encoder.tokenizer.encode(long_text, add_special_tokens=False).ids
    )
    assert prediction.chunks >= tokens // tiny_scorer.bundle.manifest.max_tokens

    # The tail of the text moves the score: it was read.
    [changed] = tiny_scorer.score([Complaint(long_text + " refund refund refund" * 50)])
    assert changed.escalation.probability != prediction.escalation.probability


def test_metadata_is_read_and_unknown_keys_listed(tiny_scorer: Scorer):
    text = "My mortgage payment was applied late and I was charged a fee."
    plain = tiny_scorer.raw_scores([Complaint(text)])
    with_company = tiny_scorer.raw_scores(
        [Complaint(text, {"company": "Big Bank", "agent_id": 7})]
    )
    assert not np.allclose(plain.escalation, with_company.escalation)

    [prediction] = tiny_scorer.score(
        [Complaint(text, {"company": "Big Bank", "agent_id": 7, "zz": None})]
    )
    assert prediction.ignored_metadata == ["agent_id", "zz"]


def test_threshold_override(tiny_bundle):
    never = Scorer(tiny_bundle, threshold=1.0)
    always = Scorer(tiny_bundle, threshold=0.0)
    complaint = [Complaint("fees")]
    assert not never.score(complaint)[0].escalation.flagged
    assert always.score(complaint)[0].escalation.flagged


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_refused(tiny_scorer: Scorer, text: str):
    with pytest.raises(InvalidComplaintError, match="complaint 0 has no readable text"):
        tiny_scorer.score([Complaint(text)])


def test_empty_batch_is_refused(tiny_scorer: Scorer):
    with pytest.raises(InvalidComplaintError, match="no complaints"):
        tiny_scorer.score([])


def test_category_only_bundle_has_no_escalation(tiny_category_bundle):
    scorer = Scorer(tiny_category_bundle)
    [prediction] = scorer.score([Complaint("My card was charged twice.")])
    assert prediction.escalation is None
    assert prediction.category is not None
    assert scorer.bundle.manifest.threshold is None


def test_unpaired_surrogates_are_refused_with_the_field(tiny_scorer: Scorer):
    with pytest.raises(
        InvalidComplaintError, match=r"complaint 1: text contains an unpaired surrogate"
    ):
        tiny_scorer.score([Complaint("fine"), Complaint("bad \ud800")])
    with pytest.raises(
        InvalidComplaintError,
        match=r"complaint 0: a metadata key or value contains an unpaired surrogate",
    ):
        tiny_scorer.score([Complaint("fine", {"company": "\udfff"})])
