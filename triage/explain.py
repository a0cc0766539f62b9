"""Explain a score by occlusion: which phrases of a complaint moved it, and by how much.

A manager reviewing a flagged case needs to see why it was flagged. The served model is asked
directly: the text is split into units (sentences, or windows of words), each unit is removed in
turn, and the complaint without it is scored again with the same metadata. The difference
p(full) - p(without unit) is the unit's delta: positive means the unit raised the probability.
Nothing here needs gradients or torch; it only calls `Scorer.probabilities`.

Limits, by design:

- Cost is one scorer call for the full complaint plus one per unit. Units are capped (`max_units`,
  merging adjacent ones) and a time budget stops the work early; an explanation cut short says
  `complete=False` and covers the first `evaluated` units in text order. The budget is checked
  before each call, so the full complaint is always scored and one call can overrun it.
- Variants are scored one per call by default. The bundles are int8 dynamically quantized: the
  activation scales are computed over everything in a call, so a complaint's score moves with
  what it is batched with (by up to ~5e-3 on the default bundle, where a typical delta is
  ~1e-2), and on CPU a batch of 16 variants was measured no faster than 16 calls. Scored alone,
  each delta is exactly what scoring the shortened text gives, and the probability is the one
  the case was served with (a request is a batch of one). Larger `batch_size` values are
  allowed, for bundles where batching is exact.
- Units never split a word; the sentence splitter is a simple rule (., !, ? or a line break ends
  a sentence), so abbreviations such as "U.S." end one too. A text without spaces is one unit.
- Deltas are one unit at a time: they do not add up, and two units that say the same thing can
  each look unimportant because the other remains.
- An explanation is of one model version; a cached one is stale once `model_version` changes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from triage.scorer import Complaint, Scorer
from triage.text import has_readable_text

logger = logging.getLogger(__name__)

# A text with fewer sentences than this is split into word windows, so that a one-sentence call
# transcript still gets several units; such a text gets at least this many units when it has
# enough words.
MIN_SENTENCES = 3
# Word windows hold at most this many words (about 15 tokens).
WINDOW_WORDS = 10
# A sentence with more words than this is split into word windows.
LONG_SENTENCE_WORDS = 40

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*$")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]")

Span = tuple[int, int]


@dataclass(frozen=True)
class Phrase:
    """A unit of the complaint and how much removing it lowered the explained probability.

    `start` and `end` are character offsets into the original text, `text == original[start:end]`.
    """

    start: int
    end: int
    text: str
    delta: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phrase:
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            text=str(data["text"]),
            delta=float(data["delta"]),
        )


@dataclass(frozen=True)
class Explanation:
    """Why one model version gave one complaint its probability.

    Attributes:
        model_version: the scorer's model version; a cached explanation of another is stale.
        target: "escalation", or "category:<label>" for a bundle without an escalation head
            (the predicted category's probability is explained then).
        probability: the target probability of the full complaint.
        raised: units that raised the probability, largest delta first.
        lowered: units that lowered it, most negative delta first.
        units: how many units the text was split into.
        evaluated: how many units were tried before the budget ran out (including units whose
            removal left no readable text, which are skipped).
        complete: whether every unit was tried.
        seconds: wall time of the explanation.
    """

    model_version: str
    target: str
    probability: float
    raised: list[Phrase]
    lowered: list[Phrase]
    units: int
    evaluated: int
    complete: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, for caching the explanation in a database row."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Explanation:
        """Rebuild an explanation from `to_dict`'s output (after a JSON round trip)."""
        try:
            return cls(
                model_version=str(data["model_version"]),
                target=str(data["target"]),
                probability=float(data["probability"]),
                raised=[Phrase.from_dict(p) for p in data["raised"]],
                lowered=[Phrase.from_dict(p) for p in data["lowered"]],
                units=int(data["units"]),
                evaluated=int(data["evaluated"]),
                complete=bool(data["complete"]),
                seconds=float(data["seconds"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a stored explanation: {error!r}") from None


@dataclass(frozen=True)
class _Target:
    """The probability being explained: escalation, or one category's column."""

    name: str
    column: int | None

    def of(
        self, probabilities: tuple[np.ndarray | None, np.ndarray | None]
    ) -> np.ndarray:
        escalation, category = probabilities
        if self.column is None:
            return escalation
        return category[:, self.column]


def explain(
    scorer: Scorer,
    complaint: Complaint,
    *,
    top_k: int = 5,
    max_units: int = 48,
    time_budget_s: float = 2.0,
    batch_size: int = 1,
) -> Explanation:
    """Explain `scorer`'s probability for `complaint` by removing one unit of text at a time.

    Args:
        scorer: the served scorer; its escalation head is explained, or the predicted category
            for a category-only bundle.
        complaint: the complaint as it was scored; its metadata is kept in every variant.
        top_k: how many phrases `raised` and `lowered` each hold at most.
        max_units: the most units the text is split into; adjacent units are merged beyond.
        time_budget_s: seconds after which no further scorer call is started.
        batch_size: variants per scorer call; 1 keeps every delta exact (see the module notes).

    Raises:
        InvalidComplaintError: the complaint itself cannot be scored.
        ValueError: an argument is out of range.
    """
    _check_arguments(top_k, max_units, batch_size)
    started = time.monotonic()
    deadline = started + time_budget_s

    spans = split_units(complaint.text, max_units)
    full = scorer.probabilities([complaint])
    target = _choose_target(scorer, full)
    probability = float(target.of(full)[0])

    deltas, evaluated = _occlude(
        scorer, complaint, spans, target, probability, deadline, batch_size
    )

    phrases = [
        Phrase(start, end, complaint.text[start:end], deltas[i])
        for i, (start, end) in enumerate(spans)
        if i in deltas
    ]
    raised, lowered = _rank(phrases, top_k)

    seconds = time.monotonic() - started
    logger.debug(
        "explained %s of model %s: %d units, %d evaluated, %d scored, %.3f s",
        target.name,
        scorer.version,
        len(spans),
        evaluated,
        len(deltas),
        seconds,
    )
    return Explanation(
        model_version=scorer.version,
        target=target.name,
        probability=probability,
        raised=raised,
        lowered=lowered,
        units=len(spans),
        evaluated=evaluated,
        complete=evaluated == len(spans),
        seconds=seconds,
    )


def _check_arguments(top_k: int, max_units: int, batch_size: int) -> None:
    if top_k < 0:
        raise ValueError(f"top_k must be 0 or more, got {top_k}")
    if max_units < 1:
        raise ValueError(f"max_units must be at least 1, got {max_units}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _choose_target(
    scorer: Scorer, full: tuple[np.ndarray | None, np.ndarray | None]
) -> _Target:
    """Escalation when the bundle has that head, else the full complaint's predicted category."""
    escalation, category = full
    if escalation is not None:
        return _Target("escalation", None)

    column = int(np.argmax(category[0]))
    label = scorer.bundle.manifest.categories[column]
    return _Target(f"category:{label}", column)


def _rank(phrases: Sequence[Phrase], top_k: int) -> tuple[list[Phrase], list[Phrase]]:
    """The `top_k` phrases that raised the probability most, and the `top_k` that lowered it.

    A phrase whose removal changed nothing is in neither list; ties go to the earlier phrase.
    """
    raised = sorted(
        (p for p in phrases if p.delta > 0), key=lambda p: (-p.delta, p.start)
    )
    lowered = sorted(
        (p for p in phrases if p.delta < 0), key=lambda p: (p.delta, p.start)
    )
    return raised[:top_k], lowered[:top_k]


def _occlude(
    scorer: Scorer,
    complaint: Complaint,
    spans: Sequence[Span],
    target: _Target,
    probability: float,
    deadline: float,
    batch_size: int,
) -> tuple[dict[int, float], int]:
    """Score the complaint without each unit, in text order, until `deadline`.

    Returns the delta of every unit scored (by unit index) and how many units were tried.
    A variant left without readable text is tried but not scored: the scorer would refuse it.
    """
    deltas: dict[int, float] = {}
    evaluated = 0
    while evaluated < len(spans) and time.monotonic() < deadline:
        batch = range(evaluated, min(evaluated + batch_size, len(spans)))
        variants = {i: _without(complaint, spans[i]) for i in batch}
        readable = {i: v for i, v in variants.items() if has_readable_text(v.text)}

        if readable:
            shortened = target.of(scorer.probabilities(list(readable.values())))
            for i, value in zip(readable, shortened, strict=True):
                deltas[i] = probability - float(value)
        evaluated = batch.stop
    return deltas, evaluated


def _without(complaint: Complaint, span: Span) -> Complaint:
    """The complaint with `span` cut out of its text; units lie between spaces, so no words join."""
    start, end = span
    return dataclasses.replace(
        complaint, text=complaint.text[:start] + complaint.text[end:]
    )


def split_units(text: str, max_units: int = 48) -> list[Span]:
    """Split `text` into at most `max_units` units, as (start, end) character offsets.

    Units are sentences; a text of fewer than `MIN_SENTENCES` sentences is cut into word windows,
    and so is a sentence longer than `LONG_SENTENCE_WORDS` words. Beyond `max_units`, adjacent
    units are merged into groups of about equal length. Units start and end on word boundaries
    and hold no surrounding whitespace; a text of only whitespace has none.
    """
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    sentences = _sentences(text, words)

    if len(sentences) < MIN_SENTENCES:
        size = min(WINDOW_WORDS, max(1, math.ceil(len(words) / MIN_SENTENCES)))
        pieces = [w for s in sentences for w in _windows(s, size)]
    else:
        pieces = []
        for sentence in sentences:
            long = len(sentence) > LONG_SENTENCE_WORDS
            pieces.extend(_windows(sentence, WINDOW_WORDS) if long else [sentence])

    units = [(piece[0][0], piece[-1][1]) for piece in pieces]
    return _merge(units, max_units)


def _sentences(text: str, words: Sequence[Span]) -> list[list[Span]]:
    """Group words into sentences: one ends at closing punctuation or before a line break."""
    sentences: list[list[Span]] = []
    current: list[Span] = []
    for index, (start, end) in enumerate(words):
        current.append((start, end))
        following = words[index + 1][0] if index + 1 < len(words) else len(text)
        if _SENTENCE_END.search(text, start, end) or _LINE_BREAK.search(
            text, end, following
        ):
            sentences.append(current)
            current = []

    if current:
        sentences.append(current)
    return sentences


def _windows(words: Sequence[Span], size: int) -> list[list[Span]]:
    """Cut a run of words into consecutive windows of at most `size` words, of even sizes."""
    count = math.ceil(len(words) / size)
    bounds = [i * len(words) // count for i in range(count + 1)]
    return [list(words[a:b]) for a, b in pairwise(bounds)]


def _merge(units: Sequence[Span], max_units: int) -> list[Span]:
    """Merge adjacent units into at most `max_units` groups of roughly equal character length.

    Each unit joins the group its midpoint falls in when the text's units are laid end to end and
    cut into `max_units` equal parts; this is linear, so a 50,000-character text costs nothing.
    """
    if len(units) <= max_units:
        return list(units)

    total = sum(end - start for start, end in units)
    merged: dict[int, Span] = {}
    done = 0
    for start, end in units:
        length = end - start
        group = (2 * done + length) * max_units // (2 * total)
        done += length
        first = merged.get(group, (start, end))[0]
        merged[group] = (first, end)
    return list(merged.values())


def highlight_segments(
    text: str, phrases: Sequence[Phrase]
) -> list[tuple[str, Phrase | None]]:
    """Cut `text` into consecutive segments, each plain (None) or belonging to one phrase.

    The segments' strings concatenate to `text` exactly and are raw text: a template escapes
    each one and wraps phrase segments in <mark>. Where phrases overlap, the one with the
    larger |delta| takes the overlap (the earlier one in `phrases` on a tie), so a segment may
    be only part of its phrase's text. A phrase whose offsets or text do not match `text` (an
    explanation of another version of it) is left out.
    """
    if not text:
        return []

    usable = [p for p in phrases if _matches(text, p)]
    if len(usable) < len(phrases):
        logger.debug(
            "left out %d phrases that do not match the text", len(phrases) - len(usable)
        )
    ranked = sorted(range(len(usable)), key=lambda i: (-abs(usable[i].delta), i))
    cuts = sorted({0, len(text), *(p.start for p in usable), *(p.end for p in usable)})

    segments: list[tuple[int, int, int | None]] = []
    for a, b in pairwise(cuts):
        owner = next(
            (i for i in ranked if usable[i].start <= a and b <= usable[i].end), None
        )
        if segments and segments[-1][2] == owner:
            segments[-1] = (segments[-1][0], b, owner)
        else:
            segments.append((a, b, owner))

    return [(text[a:b], None if i is None else usable[i]) for a, b, i in segments]


def _matches(text: str, phrase: Phrase) -> bool:
    return (
        0 <= phrase.start <= phrase.end <= len(text)
        and text[phrase.start : phrase.end] == phrase.text
    )
