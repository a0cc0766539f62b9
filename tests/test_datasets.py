"""Dataset specs: labels derived as declared, a leak-free temporal split, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, write_small_spec
from training.data import load_dataset
from triage.datasets import load_spec
from triage.errors import DatasetSpecError


@pytest.fixture(scope="module")
def cfpb():
    return load_dataset(load_spec(REPO / "data" / "specs" / "cfpb.toml"))


def test_split_is_temporal_and_texts_do_not_leak(cfpb):
    train, validation, test = (cfpb.splits[s] for s in ("train", "validation", "test"))
    dated_train = [t for t in train["time"] if t]
    assert max(dated_train) <= min(validation["time"])
    assert max(validation["time"]) <= min(test["time"])

    def norm(texts):
        return {" ".join(t.lower().split()) for t in texts}

    assert not norm(test["text"]) & (norm(train["text"]) | norm(validation["text"]))
    assert not norm(validation["text"]) & norm(train["text"])


def test_escalation_proxy_and_unlabelled_rows(cfpb):
    # "In progress" and "Untimely response" rows keep their category but carry no escalation label.
    all_rows = sum(len(cfpb.splits[s]) for s in ("train", "validation", "test"))
    labelled = sum(r["escalation_labelled"] for r in cfpb.report["splits"].values())
    assert set(cfpb.splits["test"]["escalation"]) == {-1, 0, 1}
    assert labelled < all_rows
    # The 2015-2017 rows have no company response: category only, and all in train.
    old = [r for r in cfpb.splits["train"] if r["source"].startswith("narratives_2015")]
    assert old and all(r["escalation"] == -1 and r["category"] >= 0 for r in old)


def test_every_category_is_in_every_split(cfpb):
    for split in ("train", "validation", "test"):
        assert all(
            n > 0 for n in cfpb.report["splits"][split]["category_counts"].values()
        )


def test_fingerprint_is_stable(cfpb):
    again = load_dataset(load_spec(REPO / "data" / "specs" / "cfpb.toml"))
    assert again.fingerprint == cfpb.fingerprint


def test_missing_column_names_what_was_found(tmp_path: Path):
    spec = write_small_spec(tmp_path, rows=20)
    spec.write_text(
        spec.read_text().replace(
            'text_column = "complaint_what_happened"', 'text_column = "body"'
        )
    )
    with pytest.raises(
        DatasetSpecError,
        match=re.escape(
            "small.csv: no column 'body' for text_column; map it with --text-column "
            "complaint_what_happened (or text_column in the spec). The file has the columns: "
            "company, "
        ),
    ):
        load_dataset(load_spec(spec))


def test_unmapped_category_is_an_error(tmp_path: Path):
    spec = write_small_spec(tmp_path, rows=200)
    spec.write_text(
        spec.read_text().replace('"Debt collection" = "debt_collection"\n', "")
    )
    with pytest.raises(
        DatasetSpecError,
        match=re.escape("missing from category_map: 'Debt collection'"),
    ):
        load_dataset(load_spec(spec))


def test_unknown_escalation_value_is_an_error(tmp_path: Path):
    spec = write_small_spec(tmp_path, rows=200)
    spec.write_text(
        spec.read_text().replace(
            'unlabelled = ["In progress", "Untimely response"]', "unlabelled = []"
        )
    )
    with pytest.raises(
        DatasetSpecError, match="is in none of positive, negative or unlabelled"
    ):
        load_dataset(load_spec(spec))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        ('name = "x"\nsources = []\nbogus = 1', "Extra inputs are not permitted"),
        (
            'name = "x"\n[[sources]]\npath = "a.csv"\nformat = "csv"\ntext_column = "t"',
            "temporal split needs time_column",
        ),
        (
            'name = "x"\nsources = []\n[split]\ntrain = 0.9\nvalidation = 0.2\ntest = 0.1',
            "must add up to 1",
        ),
    ],
)
def test_invalid_specs(tmp_path: Path, text: str, message: str):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(DatasetSpecError, match=message):
        load_spec(path)


def test_missing_spec_file(tmp_path: Path):
    with pytest.raises(DatasetSpecError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")
