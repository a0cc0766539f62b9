"""Occlusion explanations on the tiny bundle: units, deltas, budget, caching and highlighting.

The tiny model's weights are random, so these tests check structure and invariants (offsets,
ordering, agreement with direct scoring), never which phrases matter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import InvalidComplaintError
from triage.explain import (
    Explanation,
    Phrase,
    explain,
    highlight_segments,
    split_units,
)
from triage.scorer import Complaint, Scorer

METADATA = {"company": "Big Bank", "state": "CA"}


@pytest.fixture(scope="module")
def category_scorer(tiny_category_bundle: Path) -> Scorer:
    return Scorer(tiny_category_bundle, threads=1)


def escalation_of(scorer: Scorer, text: str) -> float:
    escalation, _ = scorer.probabilities([Complaint(text, METADATA)])
    return float(escalation[0])


def assert_valid(explanation: Explanation, text: str, top_k: int = 5) -> None:
    """Invariants every explanation keeps, complete or not."""
    assert 0.0 <= explanation.probability <= 1.0
    assert 0 <= explanation.evaluated <= explanation.units
    assert explanation.complete == (explanation.evaluated == explanation.units)
    assert len(explanation.raised) <= top_k and len(explanation.lowered) <= top_k
    for phrase in explanation.raised + explanation.lowered:
        assert 0 <= phrase.start < phrase.end <= len(text)
        assert phrase.text == text[phrase.start : phrase.end]
        assert phrase.text == phrase.text.strip()
    assert all(p.delta > 0 for p in explanation.raised)
    assert all(p.delta < 0 for p in explanation.lowered)


def test_units_are_sentences_with_offsets(real_complaints: list[str]):
    text = "I was charged twice!  They said no.\nI want a refund? Please help."
    spans = split_units(text)
    assert [text[a:b] for a, b in spans] == [
        "I was charged twice!",
        "They said no.",
        "I want a refund?",
        "Please help.",
    ]

    for text in real_complaints:
        spans = split_units(text)
        assert spans == sorted(spans)
        assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:], strict=False))
        assert all(text[a:b] == text[a:b].strip() for a, b in spans)
        assert " ".join(text[a:b] for a, b in spans).split() == text.split()
        # Units end at spaces: removing one never joins two words.
        assert all(text[a - 1 : a].isspace() for a, _ in spans[1:])
        assert all(text[b : b + 1].isspace() for _, b in spans[:-1])


def test_one_sentence_text_gets_word_windows():
    text = (
        "so I called them again on Monday and the agent put me on hold for an hour and "
        "then hung up on me and nobody ever called back even though they promised twice"
    )
    spans = split_units(text)
    assert len(spans) >= 3
    assert all(len(text[a:b].split()) <= 10 for a, b in spans)
    assert " ".join(text[a:b] for a, b in spans) == text

    short = "They charged me twice and refuse to refund."
    assert len(split_units(short)) == 3


def test_a_very_long_sentence_is_split():
    sentences = ["First one.", "Second one.", " ".join(["word"] * 95) + "."]
    text = " ".join(sentences)
    spans = split_units(text)
    assert [text[a:b] for a, b in spans[:2]] == sentences[:2]
    assert len(spans) == 2 + 10


def test_units_are_capped_on_a_very_long_text(
    tiny_scorer: Scorer, real_complaints: list[str]
):
    text = "\n".join([real_complaints[3]] * 28)
    assert len(text) > 40_000
    spans = split_units(text, max_units=48)
    assert 1 < len(spans) <= 48
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    assert " ".join(text[a:b] for a, b in spans).split() == text.split()

    explanation = explain(
        tiny_scorer, Complaint(text, METADATA), max_units=12, time_budget_s=0.5
    )
    assert explanation.units <= 12
    assert_valid(explanation, text)


def test_deltas_agree_with_direct_scoring(
    tiny_scorer: Scorer, real_complaints: list[str]
):
    text = real_complaints[5]
    explanation = explain(tiny_scorer, Complaint(text, METADATA), time_budget_s=60)

    assert explanation.complete
    assert explanation.target == "escalation"
    assert explanation.model_version == tiny_scorer.version
    assert explanation.units == len(split_units(text))
    full = escalation_of(tiny_scorer, text)
    assert explanation.probability == pytest.approx(full, abs=1e-6)

    phrases = explanation.raised + explanation.lowered
    assert phrases
    for phrase in phrases:
        without = text[: phrase.start] + text[phrase.end :]
        assert phrase.delta == pytest.approx(
            full - escalation_of(tiny_scorer, without), abs=1e-6
        )


def test_top_k_ordering(tiny_scorer: Scorer, real_complaints: list[str]):
    text = real_complaints[3]
    complaint = Complaint(text, METADATA)
    everything = explain(tiny_scorer, complaint, top_k=100, time_budget_s=60)
    top = explain(tiny_scorer, complaint, top_k=2, time_budget_s=60)

    assert_valid(everything, text, top_k=100)
    assert_valid(top, text, top_k=2)
    deltas = [p.delta for p in everything.raised]
    assert deltas == sorted(deltas, reverse=True)
    lowered = [p.delta for p in everything.lowered]
    assert lowered == sorted(lowered)
    assert top.raised == everything.raised[:2]
    assert top.lowered == everything.lowered[:2]
    assert len(everything.raised) + len(everything.lowered) <= everything.units


def test_batched_variants_give_the_same_units(
    tiny_scorer: Scorer, real_complaints: list[str]
):
    text = real_complaints[5]
    complaint = Complaint(text, METADATA)
    alone = explain(tiny_scorer, complaint, top_k=100, time_budget_s=60)
    batched = explain(
        tiny_scorer, complaint, top_k=100, time_budget_s=60, batch_size=16
    )

    assert batched.complete and batched.units == alone.units
    assert_valid(batched, text, top_k=100)
    # Quantized activations are scaled per call, so batched deltas are close, not equal.
    exact = {(p.start, p.end): p.delta for p in alone.raised + alone.lowered}
    for phrase in batched.raised + batched.lowered:
        assert phrase.delta == pytest.approx(
            exact.get((phrase.start, phrase.end), 0), abs=0.02
        )


@pytest.mark.parametrize("budget", [0.0, 1e-9, -1.0])
def test_spent_budget_gives_an_incomplete_valid_result(
    tiny_scorer: Scorer, real_complaints: list[str], budget: float
):
    text = real_complaints[3]
    explanation = explain(tiny_scorer, Complaint(text, METADATA), time_budget_s=budget)
    assert not explanation.complete
    assert explanation.evaluated < explanation.units
    assert explanation.probability == pytest.approx(
        escalation_of(tiny_scorer, text), abs=1e-6
    )
    assert_valid(explanation, text)


def test_variant_without_readable_text_is_skipped(tiny_scorer: Scorer):
    one_word = explain(tiny_scorer, Complaint("refund"), time_budget_s=60)
    assert (one_word.units, one_word.evaluated, one_word.complete) == (1, 1, True)
    assert one_word.raised == one_word.lowered == []

    text = "refund \u200b"
    explanation = explain(tiny_scorer, Complaint(text), top_k=10, time_budget_s=60)
    assert explanation.units == 2 and explanation.complete
    assert all(p.text == "\u200b" for p in explanation.raised + explanation.lowered)


def test_unreadable_complaint_is_refused(tiny_scorer: Scorer):
    with pytest.raises(InvalidComplaintError):
        explain(tiny_scorer, Complaint(" \n\t "))


@pytest.mark.parametrize(
    "arguments", [{"top_k": -1}, {"max_units": 0}, {"batch_size": 0}]
)
def test_arguments_out_of_range(tiny_scorer: Scorer, arguments: dict):
    with pytest.raises(ValueError):
        explain(tiny_scorer, Complaint("fees"), **arguments)


def test_category_only_bundle_explains_the_predicted_category(
    category_scorer: Scorer, real_complaints: list[str]
):
    text = real_complaints[5]
    explanation = explain(category_scorer, Complaint(text), time_budget_s=60)

    [prediction] = category_scorer.score([Complaint(text)])
    assert prediction.escalation is None
    assert explanation.target == f"category:{prediction.category.label}"
    assert explanation.probability == pytest.approx(
        prediction.category.probability, abs=1e-6
    )
    assert_valid(explanation, text)

    column = category_scorer.bundle.manifest.categories.index(prediction.category.label)
    for phrase in explanation.raised[:1] + explanation.lowered[:1]:
        without = text[: phrase.start] + text[phrase.end :]
        _, category = category_scorer.probabilities([Complaint(without)])
        assert phrase.delta == pytest.approx(
            explanation.probability - category[0, column], abs=1e-6
        )


def test_to_dict_from_dict_round_trip(tiny_scorer: Scorer, real_complaints: list[str]):
    explanation = explain(
        tiny_scorer, Complaint(real_complaints[3], METADATA), time_budget_s=60
    )
    stored = json.loads(json.dumps(explanation.to_dict()))
    assert Explanation.from_dict(stored) == explanation

    with pytest.raises(ValueError, match="not a stored explanation"):
        Explanation.from_dict({"model_version": "x"})


def test_highlight_segments_concatenate_to_the_text():
    text = "Hello <script>alert(1)</script> & they charged me twice."
    first = Phrase(6, 31, text[6:31], 0.2)
    adjacent = Phrase(31, 33, text[31:33], -0.1)
    overlapping = Phrase(25, 45, text[25:45], 0.5)

    for phrases in ([], [first], [first, adjacent], [first, adjacent, overlapping]):
        segments = highlight_segments(text, phrases)
        assert "".join(s for s, _ in segments) == text
        assert all(s for s, _ in segments)
        for string, phrase in segments:
            assert phrase is None or string in phrase.text

    # The stronger phrase takes the overlap; strings stay raw for the template to escape.
    segments = highlight_segments(text, [first, overlapping])
    assert segments == [
        ("Hello ", None),
        (text[6:25], first),
        (text[25:45], overlapping),
        (text[45:], None),
    ]
    assert segments[1][0].startswith("<script>")

    touching = [Phrase(0, 5, "Hello", 0.1), Phrase(5, 6, " ", 0.1)]
    segments = highlight_segments(text, touching)
    assert [p for _, p in segments] == [*touching, None]


def test_highlight_segments_leave_out_phrases_of_another_text():
    text = "I was charged twice."
    stale = [Phrase(0, 5, "Hello", 0.3), Phrase(15, 40, "x" * 25, 0.2)]
    assert highlight_segments(text, stale) == [(text, None)]
    assert highlight_segments("", stale) == []


def test_explanation_highlights_round_trip(
    tiny_scorer: Scorer, real_complaints: list[str]
):
    text = real_complaints[3]
    explanation = explain(tiny_scorer, Complaint(text), top_k=10, time_budget_s=60)
    phrases = explanation.raised + explanation.lowered
    segments = highlight_segments(text, phrases)
    assert "".join(s for s, _ in segments) == text
    assert [p for _, p in segments if p is not None] == sorted(
        phrases, key=lambda p: p.start
    )
