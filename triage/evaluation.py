"""Evaluate a bundle on a dataset's split, and the questions a data scientist asks of the result.

This is the evaluation of the public Python API (`from triage import evaluate`): it runs the
bundle's ONNX graph through the `Scorer`, so it needs neither torch nor a training install.
Reading a dataset spec does need pandas (see `triage.data`), which the training install
brings; a caller without it can build an `Evaluation` from labels and probabilities of their
own with `Evaluation.from_arrays`. The TF-IDF baseline is not here: fitting it is training,
and `triage evaluate` (in `training.evaluate`) reports the bundle beside it.

The questions: how good is each head (the same metrics as everywhere, `triage.metrics`),
which categories are confused, whether the probabilities are calibrated, how many escalations
a review team with a given capacity would catch, which threshold fills that capacity, and which
complaints the model got most confidently wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triage.aggregate import sigmoid, softmax
from triage.bundle import Bundle
from triage.data import SplitDataset, read_dataset
from triage.datasets import DatasetSpec
from triage.metrics import category_metrics, escalation_metrics, recall_at_fraction
from triage.scorer import Complaint, Prediction, Scorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probabilities:
    """Calibrated probabilities of both heads for a batch (None for a head the bundle lacks)."""

    escalation: np.ndarray | None
    category: np.ndarray | None


def model_probabilities(
    scorer: Scorer, texts: Sequence[str], metadata: Sequence[dict | None] | None
) -> tuple[Probabilities, Probabilities | None]:
    """What the bundle serves and, for a blended bundle, what its encoder alone would say."""
    complaints = [
        Complaint(t, m)
        for t, m in zip(texts, metadata or [None] * len(texts), strict=True)
    ]
    raw = scorer.raw_scores(complaints)
    manifest = scorer.bundle.manifest
    served = Probabilities(*scorer.calibrated(raw))
    if not manifest.blend:
        return served, None

    def alone(head: str, logits: np.ndarray | None, squash) -> np.ndarray | None:
        if logits is None:
            return None
        blend = manifest.blend.get(head)
        temperature = (
            blend.encoder_temperature if blend else getattr(manifest.temperatures, head)
        )
        return squash(logits / temperature)

    encoder = Probabilities(
        alone("escalation", raw.encoder_escalation, sigmoid),
        alone("category", raw.encoder_category, softmax),
    )
    return served, encoder


def _as_scorer(model: Scorer | Bundle | str | Path) -> Scorer:
    return model if isinstance(model, Scorer) else Scorer(model)


def score_texts(
    model: Scorer | Bundle | str | Path,
    texts: Sequence[str],
    metadata: Sequence[dict | None] | None = None,
) -> list[Prediction]:
    """Score complaint texts (with optional metadata, one dict per text) with a bundle.

    `model` is a `Scorer`, a loaded `Bundle` or a bundle's directory; pass a `Scorer` when
    scoring many batches, so the ONNX session is opened once.

    >>> from triage import score_texts
    >>> [p] = score_texts("models/default", ["I was charged twice and nobody refunds me"])
    >>> p.category.label in {"bank_account", "credit_card", "money_transfer"}
    True
    """
    if isinstance(texts, str):
        raise TypeError("texts is one string: pass a list of complaint texts, [text]")
    metadata = metadata if metadata is not None else [None] * len(texts)
    if isinstance(metadata, Mapping) or len(metadata) != len(texts):
        raise ValueError(
            f"metadata holds one dict (or None) per text: got {len(texts)} texts and "
            f"{'one dict' if isinstance(metadata, Mapping) else len(metadata)}"
        )
    return _as_scorer(model).score(
        [Complaint(t, m) for t, m in zip(texts, metadata, strict=True)]
    )


@dataclass(frozen=True)
class CapacityPoint:
    """What reviewing the top `capacity` share of complaints would catch."""

    capacity: float
    reviewed: int
    threshold: float
    recall: float
    precision: float


@dataclass(frozen=True)
class Evaluation:
    """A bundle's probabilities on one split, with the labels, and the views on them.

    `category_true` holds indices into `categories` and `escalation_true` 1 or 0; -1 marks a
    row without that label, which every metric leaves out.
    """

    model_version: str
    dataset: str
    split: str
    texts: list[str]
    categories: list[str]
    category_true: np.ndarray
    category_probabilities: np.ndarray | None
    escalation_true: np.ndarray
    escalation_probabilities: np.ndarray | None
    threshold: float | None = None
    ids: list[str] = field(default_factory=list)

    @classmethod
    def from_arrays(
        cls,
        texts: Sequence[str],
        categories: Sequence[str],
        category_true: Sequence[int] | None = None,
        category_probabilities: np.ndarray | None = None,
        escalation_true: Sequence[int] | None = None,
        escalation_probabilities: Sequence[float] | None = None,
        model_version: str = "unknown",
    ) -> Evaluation:
        """An evaluation of probabilities made elsewhere (another model, a spreadsheet)."""
        n = len(texts)
        return cls(
            model_version=model_version,
            dataset="arrays",
            split="given",
            texts=list(texts),
            categories=list(categories),
            category_true=np.asarray(
                category_true if category_true is not None else [-1] * n, dtype=int
            ),
            category_probabilities=None
            if category_probabilities is None
            else np.asarray(category_probabilities, dtype=float),
            escalation_true=np.asarray(
                escalation_true if escalation_true is not None else [-1] * n, dtype=int
            ),
            escalation_probabilities=None
            if escalation_probabilities is None
            else np.asarray(escalation_probabilities, dtype=float),
        )

    def _category_rows(self) -> np.ndarray:
        if self.category_probabilities is None:
            raise ValueError("the bundle has no category head")
        return np.flatnonzero(self.category_true >= 0)

    def _escalation_rows(self) -> np.ndarray:
        if self.escalation_probabilities is None:
            raise ValueError(
                "the bundle has no escalation head (a category-only bundle)"
            )
        known = np.flatnonzero(self.escalation_true >= 0)
        if len(np.unique(self.escalation_true[known])) < 2:
            raise ValueError(
                "the split needs escalated and non-escalated complaints for this"
            )
        return known

    def metrics(self) -> dict[str, dict]:
        """Category accuracy, macro-F1 and calibration error; escalation ranking, recall at
        10 and 20 % capacity and calibration error (for the heads the bundle has)."""
        result: dict[str, dict] = {}
        if self.category_probabilities is not None:
            rows = self._category_rows()
            chosen = self.category_probabilities[rows]
            result["category"] = category_metrics(
                self.category_true[rows], chosen.argmax(axis=1), self.categories, chosen
            )
        if self.escalation_probabilities is not None:
            rows = self._escalation_rows()
            result["escalation"] = escalation_metrics(
                self.escalation_true[rows], self.escalation_probabilities[rows]
            )
        return result

    def confusion(self, normalize: str | None = None) -> np.ndarray:
        """Category confusion matrix, true labels in rows, predictions in columns;
        `normalize="true"` gives each true label's share."""
        from sklearn.metrics import confusion_matrix  # see triage.metrics on why here

        rows = self._category_rows()
        predicted = self.category_probabilities[rows].argmax(axis=1)
        return confusion_matrix(
            self.category_true[rows],
            predicted,
            labels=list(range(len(self.categories))),
            normalize=normalize,
        )

    def calibration_curve(self, head: str = "escalation", bins: int = 10) -> list[dict]:
        """Per equal-width probability bin: mean probability, observed rate and count.

        For escalation the rate is the share escalated; for category it is the share of top
        labels that were right, against the top label's probability.
        """
        if head == "escalation":
            rows = self._escalation_rows()
            p = self.escalation_probabilities[rows]
            y = self.escalation_true[rows].astype(float)
        elif head == "category":
            rows = self._category_rows()
            chosen = self.category_probabilities[rows]
            p = chosen.max(axis=1)
            y = (chosen.argmax(axis=1) == self.category_true[rows]).astype(float)
        else:
            raise ValueError(f"head must be 'escalation' or 'category', got {head!r}")
        which = np.clip((p * bins).astype(int), 0, bins - 1)
        return [
            {
                "bin": b,
                "mean_probability": float(p[which == b].mean()),
                "observed_rate": float(y[which == b].mean()),
                "count": int((which == b).sum()),
            }
            for b in range(bins)
            if (which == b).any()
        ]

    def threshold_for_capacity(self, capacity: float) -> float:
        """The escalation probability that flags `capacity` (a share, 0-1) of complaints.

        A team that can review 50 of the 400 complaints a day has a capacity of 0.125; set
        `TRIAGE_ESCALATION_THRESHOLD` to this value to fill it. Complaints like these are
        assumed to keep coming in the same mix.
        """
        if not 0 < capacity <= 1:
            raise ValueError(
                f"capacity is a share of complaints in (0, 1], got {capacity}"
            )
        p = np.sort(self.escalation_probabilities[self._escalation_rows()])[::-1]
        k = max(1, int(round(len(p) * capacity)))
        return float(p[k - 1])

    def recall_at_capacity(self, capacities: Sequence[float]) -> list[CapacityPoint]:
        """For each review capacity (a share of complaints): the threshold that fills it and
        the share of escalations it catches (recall), with the precision of what is reviewed."""
        rows = self._escalation_rows()
        y, p = self.escalation_true[rows], self.escalation_probabilities[rows]
        points = []
        for capacity in capacities:
            threshold = self.threshold_for_capacity(capacity)
            reviewed = max(1, int(round(len(p) * capacity)))
            top = np.argsort(-p, kind="stable")[:reviewed]
            points.append(
                CapacityPoint(
                    capacity=float(capacity),
                    reviewed=reviewed,
                    threshold=threshold,
                    recall=recall_at_fraction(y, p, capacity),
                    precision=float(y[top].mean()),
                )
            )
        return points

    def errors(self, limit: int = 20) -> list[dict]:
        """The wrongly categorised complaints, the most confident mistakes first: the ones
        worth reading (a mislabelled row, or a pattern the model learned wrong)."""
        rows = self._category_rows()
        chosen = self.category_probabilities[rows]
        predicted = chosen.argmax(axis=1)
        wrong = np.flatnonzero(predicted != self.category_true[rows])
        wrong = wrong[np.argsort(-chosen[wrong].max(axis=1), kind="stable")][:limit]
        return [
            {
                "id": self.ids[rows[i]] if self.ids else str(rows[i]),
                "text": self.texts[rows[i]],
                "true": self.categories[self.category_true[rows[i]]],
                "predicted": self.categories[predicted[i]],
                "probability": float(chosen[i].max()),
            }
            for i in wrong
        ]


def _labels_for_bundle(
    data: SplitDataset, rows: list[dict], categories: list[str]
) -> np.ndarray:
    """Dataset category indices re-expressed in the bundle's label order (-1: unknown to it)."""
    position = {name: i for i, name in enumerate(categories)}
    return np.array(
        [
            position.get(data.categories[r["category"]], -1)
            if r["category"] >= 0
            else -1
            for r in rows
        ],
        dtype=int,
    )


def evaluate(
    model: Scorer | Bundle | str | Path,
    dataset: SplitDataset | DatasetSpec | str | Path,
    split: str = "test",
    with_metadata: bool = True,
    limit: int | None = None,
) -> Evaluation:
    """Score a dataset's split with a bundle and keep labels and probabilities together.

    `dataset` is a spec file, a `DatasetSpec` or an already read `SplitDataset`;
    `with_metadata=False` scores text alone; `limit` keeps the split's first rows (a quick
    look). Labels the bundle does not know count as unlabelled for the category head.

    >>> from triage import evaluate
    >>> result = evaluate("models/default", "data/specs/cfpb.toml", limit=60)
    >>> sorted(result.metrics())
    ['category', 'escalation']
    """
    if limit is not None and limit < 1:
        raise ValueError(
            f"limit keeps the split's first rows: 1 or more, or None; got {limit}"
        )
    scorer = _as_scorer(model)
    data = dataset if isinstance(dataset, SplitDataset) else read_dataset(dataset)
    if split not in data.parts:
        raise ValueError(f"split must be train, validation or test, got {split!r}")
    rows = data.parts[split][:limit] if limit else data.parts[split]
    if not rows:
        raise ValueError(f"the {split} split of {data.spec.name} has no rows")

    logger.info("scoring %d %s complaints of %s", len(rows), split, data.spec.name)
    metadata = [r["metadata"] for r in rows] if with_metadata else None
    served, _ = model_probabilities(scorer, [r["text"] for r in rows], metadata)
    manifest = scorer.bundle.manifest
    return Evaluation(
        model_version=scorer.version,
        dataset=data.spec.name,
        split=split,
        texts=[r["text"] for r in rows],
        categories=list(manifest.categories),
        category_true=_labels_for_bundle(data, rows, list(manifest.categories)),
        category_probabilities=served.category,
        escalation_true=np.array([r["escalation"] for r in rows], dtype=int),
        escalation_probabilities=served.escalation,
        threshold=scorer.threshold if manifest.escalation else None,
        ids=[r["id"] for r in rows],
    )
