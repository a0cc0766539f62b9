"""The complaints every benchmark scores: real CFPB narratives, never synthetic text.

The 2023 extract is sorted by date like the dataset spec's temporal split, and the last 15 %
(the test period) is used, so no benchmark text was trained on. Token counts use the bundle's
own tokenizer, without the metadata prefix (benchmarks send text only).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parent.parent
CFPB_2023 = REPO / "data" / "cfpb" / "complaints_2023_with_narrative.csv.gz"
TOKENIZER = REPO / "models" / "default" / "tokenizer.json"


def test_period_complaints() -> list[str]:
    """Narratives of the test period, oldest first, each once."""
    with gzip.open(CFPB_2023, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda r: (r["date_received"], r["complaint_id"]))
    seen: set[str] = set()
    texts = []
    for row in rows[int(len(rows) * 0.85) :]:
        text = row["complaint_what_happened"].strip()
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def token_counts(texts: list[str]) -> list[int]:
    """Tokens of each text with [CLS] and [SEP], as the model sees a one-window complaint."""
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(texts)]


def short_complaints(n: int, max_tokens: int = 128) -> list[str]:
    """Up to `n` test-period complaints of at most `max_tokens` tokens."""
    texts = test_period_complaints()
    counts = token_counts(texts)
    return [t for t, c in zip(texts, counts, strict=True) if c <= max_tokens][:n]
