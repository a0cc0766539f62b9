"""Nearest neighbours by cosine similarity: one matrix product over unit vectors.

Exact and simple; fine while the index holds up to some hundred thousand vectors (see the
README for where it stops scaling and what to switch to).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 as float32; an all-zero row stays zero (it matches nothing)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class NeighbourIndex:
    """Ids with one unit vector each; `search` returns the most similar ids first."""

    def __init__(self, dimensions: int | None = None) -> None:
        """`dimensions` is fixed by the first vectors added when it is not given."""
        self.dimensions = dimensions
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._matrix = np.zeros((0, dimensions or 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._rows

    def vector(self, item: str) -> np.ndarray:
        return self._matrix[self._rows[item]]

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors, replacing those of ids already present."""
        if not ids:
            return
        matrix = unit_rows(vectors)
        if self.dimensions is None:
            self.dimensions = matrix.shape[1]
            self._matrix = np.zeros((0, self.dimensions), dtype=np.float32)
        if matrix.shape != (len(ids), self.dimensions):
            raise ValueError(
                f"expected {len(ids)} vectors of {self.dimensions} dimensions, got "
                f"shape {matrix.shape}"
            )
        self.remove(ids)
        self._ids.extend(ids)
        self._matrix = np.vstack([self._matrix, matrix])
        self._reindex()

    def remove(self, ids: Iterable[str]) -> None:
        drop = {self._rows[i] for i in ids if i in self._rows}
        if not drop:
            return
        keep = [row for row in range(len(self._ids)) if row not in drop]
        self._ids = [self._ids[row] for row in keep]
        self._matrix = self._matrix[keep]
        self._reindex()

    def _reindex(self) -> None:
        self._rows = {item: row for row, item in enumerate(self._ids)}

    def search(
        self, vector: np.ndarray, k: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """The `k` ids most similar to `vector` (cosine), best first, without `exclude`."""
        if k <= 0 or not self._ids:
            return []
        query = unit_rows(vector)[0]
        if query.shape != (self.dimensions,):
            raise ValueError(
                f"the query has {query.shape[0]} dimensions; the index holds "
                f"{self.dimensions}"
            )
        scores = self._matrix @ query
        for item in exclude:
            if item in self._rows:
                scores[self._rows[item]] = -np.inf
        wanted = min(k, len(scores))
        top = np.argpartition(-scores, wanted - 1)[:wanted]
        ranked = top[np.argsort(-scores[top], kind="stable")]
        return [
            (self._ids[row], float(scores[row]))
            for row in ranked
            if np.isfinite(scores[row])
        ]
