"""Exact cosine nearest neighbours over a numpy matrix."""

from __future__ import annotations

import numpy as np
import pytest

from triage.neighbours import NeighbourIndex, unit_rows


def test_nearest_first_without_the_excluded():
    index = NeighbourIndex()
    index.upsert(["a", "b", "c"], np.array([[1.0, 0.0], [0.7, 0.7], [0.0, 1.0]]))
    hits = index.search(np.array([1.0, 0.1]), k=3)
    assert [item for item, _ in hits] == ["a", "b", "c"]
    assert hits[0][1] == pytest.approx(1.0 / np.sqrt(1.01), abs=1e-6)
    assert [item for item, _ in index.search([1.0, 0.1], 2, exclude={"a"})] == [
        "b",
        "c",
    ]
    assert index.search([1.0, 0.0], 0) == [] and len(index) == 3


def test_replace_and_remove_keep_ids_and_rows_together():
    index = NeighbourIndex(2)
    index.upsert(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    index.upsert(["a"], np.array([[0.0, 2.0]]))
    assert len(index) == 2
    assert index.vector("a") == pytest.approx([0.0, 1.0])
    index.remove(["b", "missing"])
    assert [item for item, _ in index.search([0.0, 1.0], 5)] == ["a"]
    assert "b" not in index and "a" in index


def test_many_vectors_match_a_full_sort():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16))
    index = NeighbourIndex()
    index.upsert([f"v{i}" for i in range(500)], vectors)
    query = rng.normal(size=16)
    expected = np.argsort(-(unit_rows(vectors) @ unit_rows(query)[0]))[:10]
    assert [item for item, _ in index.search(query, 10)] == [f"v{i}" for i in expected]


def test_zero_vectors_and_wrong_shapes():
    assert unit_rows(np.zeros((2, 3))).tolist() == [[0.0] * 3] * 2
    index = NeighbourIndex()
    assert index.search([1.0, 2.0], 3) == []
    index.upsert(["a"], np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="expected 1 vectors of 2 dimensions"):
        index.upsert(["b"], np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="the query has 3 dimensions"):
        index.search([1.0, 2.0, 3.0], 1)
