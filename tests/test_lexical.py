"""The numpy TF-IDF component matches scikit-learn, round-trips through its file, fails clearly."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import hstack
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from triage.errors import BundleError
from triage.lexical import LexicalModel, LinearHead
from triage.scorer import Complaint, Scorer


def test_matches_sklearn_on_real_complaints(real_complaints: list[str], tmp_path: Path):
    texts = real_complaints
    metadata = [{"company": f"c{i % 3}"} if i % 2 else None for i in range(len(texts))]
    y = np.arange(len(texts)) % 2

    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
    onehot = DictVectorizer().fit(
        [{f"company={m['company']}": 1} for m in metadata if m]
    )
    dicts = [{f"company={m['company']}": 1} if m else {} for m in metadata]
    x = hstack([tfidf.transform(texts), onehot.transform(dicts)]).tocsr()
    classifier = LogisticRegression(max_iter=1000).fit(x, y)

    n_terms = len(tfidf.vocabulary_)
    coef = classifier.coef_.T
    model = LexicalModel(
        sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get),
        tfidf.idf_,
        list(onehot.get_feature_names_out()),
        {
            "escalation": LinearHead(
                coef[:n_terms], coef[n_terms:], classifier.intercept_
            )
        },
    )
    expected = classifier.decision_function(x)
    assert np.allclose(
        model.logits("escalation", texts, metadata)[:, 0], expected, atol=1e-9
    )

    model.save(tmp_path / "lexical.npz")
    loaded = LexicalModel.load(tmp_path / "lexical.npz")
    assert np.allclose(
        loaded.logits("escalation", texts, metadata)[:, 0], expected, atol=1e-4
    )

    # Bundles written before the .npz format carry gzipped JSON; they load the same model.
    _write_legacy_json(model, tmp_path / "lexical.json.gz")
    legacy = LexicalModel.load(tmp_path / "lexical.json.gz")
    assert np.allclose(
        legacy.logits("escalation", texts, metadata)[:, 0], expected, atol=1e-4
    )


def _write_legacy_json(model: LexicalModel, path: Path) -> None:
    payload = {
        "vocabulary": model.terms,
        "idf": model.idf.tolist(),
        "metadata_features": model.metadata_names,
        "heads": {
            name: {
                "term_weights": head.term_weights.tolist(),
                "metadata_weights": head.metadata_weights.tolist(),
                "bias": head.bias.tolist(),
            }
            for name, head in model.heads.items()
        },
    }
    path.write_bytes(gzip.compress(json.dumps(payload).encode()))


def test_unseen_words_and_metadata_give_the_bias():
    model = LexicalModel(
        ["refund"],
        np.array([1.0]),
        ["company=a"],
        {"h": LinearHead(np.ones((1, 1)), np.ones((1, 1)), np.array([-2.0]))},
    )
    assert model.logits("h", ["zzz qqq"], [{"company": "b", "other": 1}])[0, 0] == -2.0
    assert model.logits("h", ["Refund!"], [{"company": "a"}])[0, 0] == pytest.approx(
        0.0
    )


def test_corrupt_file_is_named(tmp_path: Path):
    path = tmp_path / "lexical.npz"
    path.write_bytes(b"plain text")
    with pytest.raises(BundleError, match="lexical.npz: not a readable lexical model"):
        LexicalModel.load(path)
    np.savez(path, vocabulary=np.frombuffer(b"a", dtype=np.uint8))
    with pytest.raises(BundleError, match="lexical.npz: not a readable lexical model"):
        LexicalModel.load(path)
    path.write_bytes(path.read_bytes()[:-40])  # truncated archive
    with pytest.raises(BundleError, match="lexical.npz: not a readable lexical model"):
        LexicalModel.load(path)

    legacy = tmp_path / "lexical.json.gz"
    legacy.write_bytes(gzip.compress(b'{"vocabulary": ["a"]}'))
    with pytest.raises(
        BundleError, match="lexical.json.gz: not a readable lexical model"
    ):
        LexicalModel.load(legacy)


def test_a_blended_bundle_serves_the_declared_mix(tiny_bundle: Path, tmp_path: Path):
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    lexical = LexicalModel(
        ["fee", "late fee"],
        np.array([1.0, 2.0]),
        ["company=acme"],
        {
            "escalation": LinearHead(
                np.array([[3.0], [1.0]]), np.array([[0.5]]), np.array([-1.0])
            ),
            "category": LinearHead(np.ones((2, 7)), np.zeros((1, 7)), np.zeros(7)),
        },
    )
    lexical.save(bundle / "lexical.npz")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["blend"] = {
        "escalation": {"encoder_weight": 0.3, "encoder_temperature": 2.0}
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))

    scorer = Scorer(bundle)
    complaint = Complaint("I was charged a late fee twice", {"company": "acme"})
    raw = scorer.raw_scores([complaint])
    expected = (
        0.3 * raw.encoder_escalation / 2.0
        + 0.7
        * lexical.logits("escalation", [complaint.text], [complaint.metadata])[:, 0]
    )
    assert np.allclose(raw.escalation, expected)
    assert np.allclose(
        raw.category, raw.encoder_category
    )  # no blend declared for this head

    (bundle / "lexical.npz").unlink()
    with pytest.raises(
        BundleError, match="blends a lexical model but lacks lexical.npz"
    ):
        Scorer(bundle)


def _file_with_categories(tmp_path: Path, train: list[str], validation: list[str]):
    """A mapped CSV whose official split gives train and validation different categories."""
    import pandas as pd

    from training.data import load_dataset
    from triage.datasets import spec_for_file

    words = {
        "refund": "refund money back",
        "card": "card lost stolen",
        "login": "password login locked",
        "fee": "fee charged extra",
    }
    rows = []
    for split, categories in (("train", train), ("dev", validation), ("test", train)):
        for i in range(12):
            category = categories[i % len(categories)]
            text = f"{words[category]} please help case {i}"
            rows.append({"text": text, "reason": category, "split": split})
    path = tmp_path / "complaints.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = spec_for_file(
        path, text_column="text", category_column="reason", split_column="split"
    )
    return load_dataset(spec)


@pytest.mark.parametrize(
    "train", [["refund", "card", "login"], ["refund", "card"]], ids=["3", "2"]
)
def test_a_category_missing_from_training_gets_a_column_and_almost_no_probability(
    tmp_path: Path, train: list[str]
):
    from training.lexical import fit_lexical

    data = _file_with_categories(tmp_path, train, [*train, "fee"])
    fee = data.categories.index("fee")

    model = fit_lexical(data)

    logits = model.logits("category", ["fee charged extra", "card lost stolen"], None)
    assert logits.shape == (2, len(data.categories))
    z = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert probabilities[:, fee].max() < 1e-3
    assert probabilities[1].argmax() == data.categories.index("card")
