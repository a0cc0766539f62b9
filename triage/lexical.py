"""A torch-free TF-IDF + linear model that a bundle may carry beside its ONNX graph.

On the CFPB proxy, word statistics and the answering company carry signal that a small
fine-tuned encoder misses; a bundle can therefore blend the encoder's logits with those of a
linear model over TF-IDF features and one-hot metadata. This module re-implements scikit-learn's
`TfidfVectorizer` transform (lower-casing, `\\b\\w\\w+\\b` tokens, 1-2 grams, sublinear tf, idf,
L2 norm) in numpy so serving needs neither scikit-learn models nor pickles; a test checks it
against scikit-learn.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triage.errors import BundleError

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass
class LinearHead:
    """Weights over [tfidf terms | metadata features], one column per output."""

    term_weights: np.ndarray
    metadata_weights: np.ndarray
    bias: np.ndarray


class LexicalModel:
    """TF-IDF features of the text plus one-hot `key=value` metadata, and linear heads."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        idf: np.ndarray,
        metadata_features: Sequence[str],
        heads: Mapping[str, LinearHead],
    ) -> None:
        self.vocabulary = {term: i for i, term in enumerate(vocabulary)}
        self.terms = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.metadata_features = {name: i for i, name in enumerate(metadata_features)}
        self.metadata_names = list(metadata_features)
        self.heads = dict(heads)

    def _text_features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        words = _TOKEN.findall(text.lower())
        grams = Counter(words)
        grams.update(" ".join(pair) for pair in zip(words, words[1:], strict=False))
        index, values = [], []
        for gram, count in grams.items():
            column = self.vocabulary.get(gram)
            if column is not None:
                index.append(column)
                values.append((1.0 + math.log(count)) * self.idf[column])
        values_array = np.array(values)
        norm = np.linalg.norm(values_array)
        return np.array(
            index, dtype=np.int64
        ), values_array / norm if norm else values_array

    def _metadata_columns(self, metadata: Mapping[str, object] | None) -> list[int]:
        columns = []
        for key, value in (metadata or {}).items():
            if value is None or str(value).strip() == "":
                continue
            column = self.metadata_features.get(f"{key}={str(value).strip()}")
            if column is not None:
                columns.append(column)
        return columns

    def logits(
        self,
        head: str,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, object] | None] | None = None,
    ) -> np.ndarray:
        """Linear outputs of `head` for each text: shape (n, outputs)."""
        return self.all_logits(texts, metadata, heads=(head,))[head]

    def all_logits(
        self,
        texts: Sequence[str],
        metadata: Sequence[Mapping[str, object] | None] | None = None,
        heads: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs of several heads, featurising each text once."""
        names = list(heads or self.heads)
        metadata = metadata if metadata is not None else [None] * len(texts)
        out = {
            name: np.tile(self.heads[name].bias, (len(texts), 1)).astype(np.float64)
            for name in names
        }
        for row, (text, meta) in enumerate(zip(texts, metadata, strict=True)):
            index, values = self._text_features(text)
            columns = self._metadata_columns(meta)
            for name in names:
                weights = self.heads[name]
                if len(index):
                    out[name][row] += values @ weights.term_weights[index]
                for column in columns:
                    out[name][row] += weights.metadata_weights[column]
        return out

    def save(self, path: Path) -> None:
        """Write the model as a NumPy `.npz` archive of plain arrays (no pickles)."""
        arrays = {
            "vocabulary": _joined(self.terms),
            "idf": self.idf.astype(np.float32),
            "metadata_features": _joined(self.metadata_names),
            "head_names": _joined(list(self.heads)),
        }
        for name, head in self.heads.items():
            arrays[f"{name}.term_weights"] = head.term_weights.astype(np.float32)
            arrays[f"{name}.metadata_weights"] = head.metadata_weights.astype(
                np.float32
            )
            arrays[f"{name}.bias"] = head.bias.astype(np.float32)
        with path.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> LexicalModel:
        """Read a `.npz` model, or the gzipped JSON that bundles before it used (slower)."""
        try:
            model = (
                _read_json(cls, path) if path.suffix == ".gz" else _read_npz(cls, path)
            )
        except (
            OSError,
            EOFError,
            ValueError,
            KeyError,
            TypeError,
            zipfile.BadZipFile,
        ) as error:
            raise BundleError(
                f"{path}: not a readable lexical model ({error})"
            ) from None

        for name, head in model.heads.items():
            if head.term_weights.shape[0] != len(
                model.terms
            ) or head.metadata_weights.shape[0] != len(model.metadata_names):
                raise BundleError(
                    f"{path}: head {name!r} does not match the vocabulary or metadata features"
                )
        return model


def _joined(names: Sequence[str]) -> np.ndarray:
    """Names as one UTF-8 byte array: n-grams hold no newline, and this loads in milliseconds."""
    return np.frombuffer("\n".join(names).encode("utf-8"), dtype=np.uint8)


def _split(blob: np.ndarray) -> list[str]:
    text = blob.tobytes().decode("utf-8")
    return text.split("\n") if text else []


def _read_npz(cls: type[LexicalModel], path: Path) -> LexicalModel:
    # Opened here, not by np.load, which leaves the file open when the archive is corrupt.
    with path.open("rb") as handle, np.load(handle, allow_pickle=False) as arrays:
        metadata = _split(arrays["metadata_features"])
        heads = {
            name: LinearHead(
                arrays[f"{name}.term_weights"].astype(np.float64),
                arrays[f"{name}.metadata_weights"]
                .astype(np.float64)
                .reshape(len(metadata), -1),
                arrays[f"{name}.bias"].astype(np.float64),
            )
            for name in _split(arrays["head_names"])
        }
        return cls(
            _split(arrays["vocabulary"]),
            arrays["idf"].astype(np.float64),
            metadata,
            heads,
        )


def _read_json(cls: type[LexicalModel], path: Path) -> LexicalModel:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        payload = json.load(handle)
    heads = {
        name: LinearHead(
            np.asarray(h["term_weights"], dtype=np.float64),
            np.asarray(h["metadata_weights"], dtype=np.float64).reshape(
                len(payload["metadata_features"]), len(h["bias"])
            ),
            np.asarray(h["bias"], dtype=np.float64),
        )
        for name, h in payload["heads"].items()
    }
    return cls(
        payload["vocabulary"],
        np.asarray(payload["idf"]),
        payload["metadata_features"],
        heads,
    )
