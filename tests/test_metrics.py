"""Metrics and calibration on cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from triage.aggregate import mean_by_complaint, sigmoid
from triage.calibration import (
    choose_threshold,
    fit_binary_temperature,
    fit_multiclass_temperature,
)
from triage.metrics import (
    category_metrics,
    escalation_metrics,
    expected_calibration_error,
    recall_at_fraction,
    within_group_roc_auc,
)


def test_ece_is_zero_when_rates_match_probabilities():
    p = np.array([0.2] * 10 + [0.8] * 10)
    y = np.array([1, 1] + [0] * 8 + [1] * 8 + [0, 0])
    assert expected_calibration_error(y, p) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(0.1)


def test_recall_at_fraction_counts_escalations_in_the_top():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(1, 0, 10)
    assert recall_at_fraction(y, p, 0.1) == 0.5
    assert recall_at_fraction(y, p, 1.0) == 1.0


def test_escalation_metrics_need_both_classes():
    with pytest.raises(ValueError, match="both escalated and non-escalated"):
        escalation_metrics([1, 1], [0.2, 0.3])
    metrics = escalation_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    assert (
        metrics["roc_auc"] == 1.0
        and metrics["pr_auc"] == 1.0
        and metrics["positives"] == 2
    )


def test_macro_f1_leaves_out_labels_neither_true_nor_predicted():
    metrics = category_metrics([0, 0, 1], [0, 0, 1], ["a", "b", "c"])
    assert metrics["accuracy"] == 1.0 and metrics["macro_f1"] == 1.0
    assert metrics["per_class_f1"] == {"a": 1.0, "b": 1.0, "c": None}
    assert metrics["labels_in_macro_f1"] == 2


def test_macro_f1_counts_a_label_predicted_but_never_true():
    metrics = category_metrics([0, 0, 1, 1], [0, 0, 1, 2], ["a", "b", "c"])
    assert metrics["per_class_f1"]["c"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


def test_within_group_skips_small_or_single_class_groups():
    rng = np.random.default_rng(0)
    y = np.r_[np.tile([0, 1], 20), np.zeros(40, dtype=int), np.tile([0, 1], 5)]
    p = np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.01, len(y))
    groups = ["big"] * 40 + ["one-class"] * 40 + ["small"] * 10
    result = within_group_roc_auc(y, p, groups)
    assert result["groups"] == 1 and result["mean_roc_auc"] == 1.0


def test_temperature_recovers_the_true_one():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, 20_000)
    y = rng.random(len(z)) < sigmoid(z / 2.5)
    assert fit_binary_temperature(z, y) == pytest.approx(2.5, rel=0.05)

    logits = rng.normal(0, 2, (20_000, 4))
    scaled = np.exp(logits / 0.5)
    labels = np.array([rng.choice(4, p=row / row.sum()) for row in scaled])
    assert fit_multiclass_temperature(logits, labels) == pytest.approx(0.5, rel=0.05)


def test_threshold_maximises_f1():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7])
    assert 0.3 < choose_threshold(y, p) <= 0.6


def test_chunk_mean_is_weighted_by_tokens():
    values = np.array([[1.0], [3.0], [5.0]])
    means = mean_by_complaint(values, np.array([0, 0, 1]), np.array([3.0, 1.0, 2.0]), 2)
    assert means[:, 0].tolist() == [1.5, 5.0]


def test_top_label_calibration_error_of_the_category_head():
    from triage.metrics import top_label_calibration_error

    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    # Every top label is right: the error is how far below 1 the top probabilities are.
    assert top_label_calibration_error([0, 0, 0, 1], probabilities) == pytest.approx(
        (0.1 + 0.2 + 0.4 + 0.3) / 4
    )
    metrics = category_metrics([0, 0, 0, 1], [0, 0, 0, 1], ["a", "b"], probabilities)
    assert metrics["ece"] == pytest.approx(0.25)
