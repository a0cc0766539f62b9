"""Combine per-chunk logits into one score per complaint, and calibrate them.

A long complaint is scored as several overlapping chunks. Each head's logits are averaged over
a complaint's chunks, weighted by the number of text tokens in the chunk, so a short tail chunk
counts less than a full one. Temperature scaling then divides the averaged logits by the
temperature fitted on the validation split.
"""

from __future__ import annotations

import numpy as np


def mean_by_complaint(
    values: np.ndarray,
    complaint_index: np.ndarray,
    weights: np.ndarray,
    n_complaints: int,
) -> np.ndarray:
    """Weighted mean of chunk rows per complaint; `values` is (chunks,) or (chunks, k)."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    totals = np.zeros((n_complaints, flat.shape[1]))
    np.add.at(totals, complaint_index, flat * weights[:, None])
    counts = np.zeros(n_complaints)
    np.add.at(counts, complaint_index, weights)
    means = totals / counts[:, None]
    return means.reshape((n_complaints, *values.shape[1:]))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    shifted = np.exp(z - z.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
