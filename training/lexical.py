"""Fit the lexical component a bundle can blend with its encoder (see `triage.lexical`).

The same TF-IDF + logistic regression recipe as the baseline, with two differences that suit a
served component: every training row appears twice, once with its metadata and once without,
so the model stays sound for callers that send none; and the regularisation is chosen by
validation log loss, since the output is blended as a probability, not thresholded alone.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from training.data import LoadedDataset
from triage.lexical import LexicalModel, LinearHead

logger = logging.getLogger(__name__)

C_GRID = (1.0, 3.0, 10.0, 30.0)


def _metadata_dicts(
    metadata: list[dict | None], keys: list[str]
) -> list[dict[str, int]]:
    return [
        {f"{k}={str(m[k]).strip()}": 1 for k in keys if m and m.get(k)}
        for m in metadata
    ]


def _rows(
    data: LoadedDataset, split: str, label: str, doubled: bool
) -> tuple[list[str], list, np.ndarray]:
    rows = data.splits[split]
    y = np.array(rows[label])
    keep = np.flatnonzero(y >= 0)
    texts = [rows["text"][i] for i in keep]
    metadata = [rows["metadata"][i] for i in keep]
    if not doubled:
        return texts, metadata, y[keep]
    return texts + texts, metadata + [None] * len(texts), np.r_[y[keep], y[keep]]


def fit_lexical(data: LoadedDataset) -> LexicalModel:
    """Fit TF-IDF, the metadata one-hot and a linear head per labelled head on the train split."""
    keys = data.spec.metadata_keys
    tfidf = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000
    )
    tfidf.fit(data.splits["train"]["text"])
    onehot = DictVectorizer().fit(
        _metadata_dicts(data.splits["train"]["metadata"], keys) + [{"_": 1}]
    )

    def features(texts: list[str], metadata: list) -> csr_matrix:
        return hstack(
            [tfidf.transform(texts), onehot.transform(_metadata_dicts(metadata, keys))]
        ).tocsr()

    heads = {}
    n_terms = len(tfidf.vocabulary_)
    for head, label, weight in (
        ("escalation", "escalation", None),
        ("category", "category", "balanced"),
    ):
        if (head == "escalation" and not data.spec.has_escalation) or (
            head == "category" and not data.spec.has_category
        ):
            continue
        texts, metadata, y = _rows(data, "train", label, doubled=True)
        v_texts, v_metadata, v_y = _rows(data, "validation", label, doubled=False)
        x, x_validation = features(texts, metadata), features(v_texts, v_metadata)

        best = None
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=3000, class_weight=weight).fit(
                x, y
            )
            loss = log_loss(
                v_y, model.predict_proba(x_validation), labels=model.classes_
            )
            if best is None or loss < best[0]:
                best = (loss, c, model)
        loss, c, model = best
        logger.info("lexical %s head: C=%s, validation log loss %.4f", head, c, loss)

        coef = (
            model.coef_.T
        )  # (features, outputs): 1 output for escalation, one per class otherwise
        heads[head] = LinearHead(
            coef[:n_terms], coef[n_terms:], model.intercept_.copy()
        )

    vocabulary = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)
    return LexicalModel(
        vocabulary, tfidf.idf_, list(onehot.get_feature_names_out()), heads
    )
