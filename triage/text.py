"""Turn a complaint into model inputs: metadata prefix, tokenization and overlapping chunks.

Training and serving share this module so that a model sees at serving time exactly the inputs
it was trained on. Only the `tokenizers` library is used (no transformers, no torch).

A complaint is encoded as a BERT sentence pair: the first segment holds the declared metadata
keys the model reads (``company: ... | state: ...``), the second a window of the complaint text.
Text longer than one window is split into overlapping windows ("chunks"); every token of the text
lands in at least one chunk, so nothing is cut. The scorer aggregates the chunks' logits.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from triage.errors import BundleError

# The metadata prefix never takes more than this many tokens of a window.
MAX_PREFIX_TOKENS = 32
# The smallest window that leaves room for text after the metadata prefix.
MIN_WINDOW_TOKENS = MAX_PREFIX_TOKENS + 16


def max_overlap(max_tokens: int) -> int:
    """The largest overlap a window of `max_tokens` allows: under half of the text part of a
    window, so consecutive chunks always move forward."""
    return (max_tokens - MAX_PREFIX_TOKENS - 3) // 2 - 1


@dataclass(frozen=True)
class Chunk:
    """One model input window of one complaint."""

    complaint_index: int
    input_ids: list[int]
    token_type_ids: list[int]
    text_tokens: int


@dataclass(frozen=True)
class EncodedBatch:
    """Padded arrays for a batch of chunks, with the complaint each chunk belongs to."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    complaint_index: np.ndarray
    text_tokens: np.ndarray


def unicode_problem(value: str) -> str | None:
    """Why `value` cannot be tokenized or stored, or None.

    JSON escapes such as a lone \\ud800 decode to unpaired surrogates, which are not text; a
    NUL character is not text either.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains an unpaired surrogate (\\u{ord(value[error.start]):04x}) at character {error.start}; send valid Unicode"
    if "\x00" in value:
        # Never text, and PostgreSQL cannot store it: refused on every backend alike.
        return f"contains a NUL character at character {value.index(chr(0))}; remove it"
    return None


def has_readable_text(value: str) -> bool:
    """Whether `value` holds a letter, digit, symbol or punctuation mark.

    Text made only of spaces, control characters, zero-width characters or byte-order marks
    gives the model nothing to read, and is refused rather than given a meaningless score.
    """
    return any(unicodedata.category(ch)[0] in "LNSP" for ch in value)


def load_tokenizer(path: Path) -> Tokenizer:
    """Load a `tokenizer.json` with its own truncation and padding switched off."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception on bad files
        raise BundleError(f"{path}: not a readable tokenizer.json ({error})") from None

    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def metadata_prefix(metadata: Mapping[str, object] | None, keys: Sequence[str]) -> str:
    """Render the declared metadata keys present in `metadata` as the first segment.

    Keys are written in the order the model declares them; missing or empty values are left out,
    so a caller that sends no metadata gets an empty prefix (the model is trained for that).
    """
    if not metadata:
        return ""

    parts = []
    for key in keys:
        value = metadata.get(key)
        if value is None:
            continue
        value = str(value).strip()
        if value:
            parts.append(f"{key}: {value}")
    return " | ".join(parts)


class ComplaintEncoder:
    """Encode complaints into chunks of at most `max_tokens` tokens.

    Args:
        tokenizer: a WordPiece tokenizer with `[CLS]`, `[SEP]` and `[PAD]`.
        max_tokens: the model's window, special tokens included.
        overlap: tokens shared by consecutive chunks of one long text.
        metadata_keys: metadata keys the model reads, in order.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_tokens: int,
        overlap: int,
        metadata_keys: Sequence[str] = (),
    ) -> None:
        if max_tokens < MIN_WINDOW_TOKENS:
            raise ValueError(
                f"max_tokens must be at least {MIN_WINDOW_TOKENS}, got {max_tokens}"
            )
        if not 0 <= overlap <= max_overlap(max_tokens):
            raise ValueError(
                f"overlap must be between 0 and {max_overlap(max_tokens)} for a "
                f"{max_tokens}-token window (under half the text left after the metadata "
                f"prefix and special tokens), got {overlap}"
            )

        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.metadata_keys = tuple(metadata_keys)
        self.cls_id = self._special_id("[CLS]")
        self.sep_id = self._special_id("[SEP]")
        self.pad_id = self._special_id("[PAD]")

    def _special_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise BundleError(
                f"tokenizer has no {token} token; a BERT WordPiece tokenizer is needed"
            )
        return token_id

    def chunks(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, object] | None] | None = None,
        max_chunks: int | None = None,
    ) -> list[Chunk]:
        """Split every complaint into windows; `max_chunks` keeps only the first ones (training)."""
        metadata = metadata if metadata is not None else [None] * len(texts)
        prefixes = [metadata_prefix(m, self.metadata_keys) for m in metadata]
        text_ids = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        prefix_ids = self.tokenizer.encode_batch(prefixes, add_special_tokens=False)

        chunks: list[Chunk] = []
        for index, (text, prefix) in enumerate(zip(text_ids, prefix_ids, strict=True)):
            windows = self._windows(text.ids, prefix.ids[:MAX_PREFIX_TOKENS], index)
            chunks.extend(windows[:max_chunks] if max_chunks else windows)
        return chunks

    def _windows(self, text: list[int], prefix: list[int], index: int) -> list[Chunk]:
        if prefix:
            head = [self.cls_id, *prefix, self.sep_id]
            room = self.max_tokens - len(head) - 1
        else:
            head = [self.cls_id]
            room = self.max_tokens - 2

        step = room - self.overlap
        starts = range(0, max(len(text) - self.overlap, 1), step)
        windows = []
        for start in starts:
            piece = text[start : start + room]
            ids = [*head, *piece, self.sep_id]
            types = [0] * len(head) + [1 if prefix else 0] * (len(piece) + 1)
            windows.append(Chunk(index, ids, types, len(piece)))
        return windows

    def pad(self, chunks: Sequence[Chunk]) -> EncodedBatch:
        """Pad chunks to the longest one in the batch."""
        width = max(len(c.input_ids) for c in chunks)
        input_ids = np.full((len(chunks), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(chunks), width), dtype=np.int64)
        types = np.zeros((len(chunks), width), dtype=np.int64)
        for row, chunk in enumerate(chunks):
            n = len(chunk.input_ids)
            input_ids[row, :n] = chunk.input_ids
            attention[row, :n] = 1
            types[row, :n] = chunk.token_type_ids

        return EncodedBatch(
            input_ids=input_ids,
            attention_mask=attention,
            token_type_ids=types,
            complaint_index=np.array(
                [c.complaint_index for c in chunks], dtype=np.int64
            ),
            text_tokens=np.array(
                [max(c.text_tokens, 1) for c in chunks], dtype=np.float64
            ),
        )
