"""The classical baseline every model is judged against: TF-IDF + logistic regression.

Word 1-2 grams with sublinear term frequency; optionally one-hot metadata beside the text. The
regularisation strength is chosen on the validation split, never on test.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score
from sklearn.preprocessing import OneHotEncoder

logger = logging.getLogger(__name__)

C_GRID = (0.3, 1.0, 3.0, 10.0)


@dataclass
class Features:
    """Fitted text (and metadata) featurisation."""

    tfidf: TfidfVectorizer
    onehot: OneHotEncoder | None
    keys: tuple[str, ...]

    @classmethod
    def fit(
        cls, texts: Sequence[str], metadata: Sequence[dict] | None, keys: Sequence[str]
    ) -> Features:
        tfidf = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000
        )
        tfidf.fit(texts)
        onehot = None
        if metadata is not None and keys:
            onehot = OneHotEncoder(handle_unknown="ignore").fit(
                _metadata_table(metadata, keys)
            )
        return cls(tfidf, onehot, tuple(keys))

    def transform(self, texts: Sequence[str], metadata: Sequence[dict] | None):
        matrix = self.tfidf.transform(texts)
        if self.onehot is not None:
            matrix = hstack(
                [matrix, self.onehot.transform(_metadata_table(metadata, self.keys))]
            ).tocsr()
        return matrix


def _metadata_table(metadata: Sequence[dict] | None, keys: Sequence[str]) -> np.ndarray:
    rows = metadata or []
    return np.array(
        [[str((m or {}).get(k) or "") for k in keys] for m in rows], dtype=object
    )


@dataclass
class BaselineHead:
    """A fitted featurisation plus classifier for one head."""

    features: Features
    classifier: LogisticRegression
    C: float

    def predict_proba(
        self, texts: Sequence[str], metadata: Sequence[dict] | None
    ) -> np.ndarray:
        return self.classifier.predict_proba(self.features.transform(texts, metadata))


def fit_head(
    kind: str,
    train: tuple[Sequence[str], Sequence[dict] | None, np.ndarray],
    validation: tuple[Sequence[str], Sequence[dict] | None, np.ndarray],
    keys: Sequence[str],
) -> BaselineHead:
    """Fit an escalation (`kind="escalation"`) or category head, choosing C on validation.

    Escalation is fitted without class weights so its probabilities stay calibrated and it is
    chosen by PR-AUC; the category head uses balanced class weights and is chosen by macro-F1.
    """
    texts, metadata, y = train
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"the training split's {kind} labels hold one value only ({len(y)} rows): a "
            f"classifier needs two or more; check the {kind} column or the spec's mapping"
        )
    features = Features.fit(texts, metadata, keys if metadata is not None else ())
    x_train = features.transform(texts, metadata)
    x_validation = features.transform(validation[0], validation[1])

    best: tuple[float, float, LogisticRegression] | None = None
    for c in C_GRID:
        if kind == "escalation":
            model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y)
            score = average_precision_score(
                validation[2], model.predict_proba(x_validation)[:, 1]
            )
        else:
            model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(
                x_train, y
            )
            score = f1_score(
                validation[2],
                model.predict(x_validation),
                average="macro",
                zero_division=0,
            )
        if best is None or score > best[0]:
            best = (score, c, model)

    logger.info("baseline %s head: C=%s, validation score %.4f", kind, best[1], best[0])
    return BaselineHead(features, best[2], best[1])
