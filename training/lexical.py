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
from triage.aggregate import sigmoid, softmax
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
        outputs = 1 if head == "escalation" else len(data.categories)

        best = None
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=3000, class_weight=weight).fit(
                x, y
            )
            linear = _linear_head(model, n_terms, outputs)
            loss = log_loss(
                v_y,
                _probabilities(linear, x_validation, n_terms),
                labels=np.arange(max(outputs, 2)),
            )
            if best is None or loss < best[0]:
                best = (loss, c, linear)
        loss, c, heads[head] = best
        logger.info("lexical %s head: C=%s, validation log loss %.4f", head, c, loss)

    vocabulary = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)
    return LexicalModel(
        vocabulary, tfidf.idf_, list(onehot.get_feature_names_out()), heads
    )


# How far below the lowest learned bias a category the training split never shows is put: its
# probability from this component is then about e^-10 of the least likely seen category's.
UNSEEN_BIAS_GAP = 10.0


def _linear_head(model: LogisticRegression, n_terms: int, outputs: int) -> LinearHead:
    """The fitted model as a `LinearHead` with one column per output of the head.

    A category head gets a column for every category of the spec, in order, even when the
    training split lacks some (MultiDoGO's train split has no `openaccount` turn) or holds
    only two (scikit-learn then fits a single binary column); otherwise the component's
    columns would not line up with the encoder's when the two are blended.
    """
    coef, bias = model.coef_.T, model.intercept_
    if outputs == 1:
        return LinearHead(coef[:n_terms].copy(), coef[n_terms:].copy(), bias.copy())

    if coef.shape[1] == 1:  # two classes seen: softmax([0, z]) is sigmoid(z)
        coef = np.hstack([np.zeros_like(coef), coef])
        bias = np.r_[0.0, bias]
    full_coef = np.zeros((coef.shape[0], outputs))
    full_bias = np.full(outputs, bias.min() - UNSEEN_BIAS_GAP)
    full_coef[:, model.classes_] = coef
    full_bias[model.classes_] = bias
    return LinearHead(full_coef[:n_terms], full_coef[n_terms:], full_bias)


def _probabilities(head: LinearHead, x: csr_matrix, n_terms: int) -> np.ndarray:
    """The head's probabilities on feature rows: sigmoid for one output, softmax otherwise."""
    z = x[:, :n_terms] @ head.term_weights + x[:, n_terms:] @ head.metadata_weights
    z = np.asarray(z) + head.bias
    if z.shape[1] == 1:
        p = sigmoid(z[:, 0])
        return np.c_[1 - p, p]
    return softmax(z)
