"""Temperature scaling and the default escalation threshold, both fitted on validation data."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import f1_score

from triage.aggregate import sigmoid, softmax


def fit_binary_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the log loss of sigmoid(logit / T)."""
    logits, y = np.asarray(logits, dtype=float), np.asarray(y, dtype=float)

    def loss(log_t: float) -> float:
        p = np.clip(sigmoid(logits / np.exp(log_t)), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


def fit_multiclass_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the log loss of softmax(logits / T)."""
    logits, y = np.asarray(logits, dtype=float), np.asarray(y, dtype=int)

    def loss(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))[np.arange(len(y)), y]
        return float(-np.mean(np.log(np.clip(p, 1e-7, 1.0))))

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the best F1 for flagging escalations."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    candidates = np.unique(np.round(p, 3))
    scores = [f1_score(y, p >= t, zero_division=0) for t in candidates]
    return float(candidates[int(np.argmax(scores))])
