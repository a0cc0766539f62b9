"""The public Python API: every code block of docs/python-api.md and every docstring example of
the names `triage` exports run, from the repository's root, against the committed bundle."""

from __future__ import annotations

import doctest
import json
import re

import numpy as np
import pytest

import triage
from tests.conftest import REPO
from triage.evaluation import Evaluation

DOC = REPO / "docs" / "python-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_api_page_runs(index, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    exec(compile(BLOCKS[index], f"{DOC.name} block {index + 1}", "exec"), {})
    assert capsys.readouterr().out


@pytest.mark.parametrize("name", ["evaluate", "read_dataset", "score_texts"])
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(REPO)
    function = getattr(triage, name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(function, name, globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted > 0
    assert runner.summarize(verbose=False).failed == 0


def test_public_names_are_sorted_and_importable():
    assert triage.__all__ == sorted(triage.__all__)
    assert all(hasattr(triage, name) for name in triage.__all__)


def _capacity_case() -> Evaluation:
    # Ten complaints, three escalated, ranked so the top two are escalations.
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    return Evaluation.from_arrays(
        texts=[f"complaint {i}" for i in range(10)],
        categories=["a", "b"],
        escalation_true=y,
        escalation_probabilities=p,
    )


def test_threshold_for_capacity_flags_that_share():
    result = _capacity_case()
    assert result.threshold_for_capacity(0.2) == 0.9
    assert (result.escalation_probabilities >= 0.9).sum() == 2


def test_recall_against_review_capacity():
    points = _capacity_case().recall_at_capacity([0.2, 0.5, 1.0])
    assert [round(p.recall, 3) for p in points] == [0.667, 1.0, 1.0]
    assert [p.reviewed for p in points] == [2, 5, 10]
    assert points[0].precision == 1.0 and points[1].precision == 0.6


def test_capacity_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=re.escape("a share of complaints in (0, 1]")):
        _capacity_case().threshold_for_capacity(50)


def test_category_views_of_given_probabilities():
    result = Evaluation.from_arrays(
        texts=["x", "y", "z", "w"],
        categories=["card", "refund"],
        category_true=[0, 0, 1, 1],
        category_probabilities=np.array(
            [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]]
        ),
    )
    assert result.confusion().tolist() == [[1, 1], [0, 2]]
    [error] = result.errors()
    assert error == {
        "id": "1",
        "text": "y",
        "true": "card",
        "predicted": "refund",
        "probability": 0.8,
    }
    assert result.metrics()["category"]["accuracy"] == 0.75
    with pytest.raises(ValueError, match="no escalation head"):
        result.recall_at_capacity([0.1])


@pytest.mark.parametrize("name", ["banking77", "multidogo"])
def test_public_benchmark_tables_in_docs_come_from_the_result_files(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "public_table", REPO / "benchmarks" / "public_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    table = module.table(REPO / "docs" / "results" / f"public-{name}.json")

    for page in ("docs/benchmarks-public.md", "README.md"):
        assert table in (REPO / page).read_text(encoding="utf-8"), page


@pytest.mark.parametrize("name", ["banking77", "multidogo"])
def test_public_benchmark_gate_figures_in_docs_come_from_the_bundle_manifest(name):
    manifest = json.loads(
        (REPO / "docs" / "results" / f"public-{name}-manifest.json").read_text()
    )
    gate, blend = manifest["gate"], manifest["blend"]["category"]
    page = (REPO / "docs" / "benchmarks-public.md").read_text(encoding="utf-8")
    heading = "## MultiDoGO" if name == "multidogo" else "## banking77"
    section = page[page.index(heading) :].split("\n## ")[0]

    assert f"{100 * gate['int8_argmax_agreement']:.1f} %" in section
    assert f"by {gate['int8_max_abs_probability_diff']:.3f}" in section
    assert not gate["passed"] and not gate["enforced"]
    assert f"encoder weight {blend['encoder_weight']:.2f}" in section


def test_score_texts_refuses_arguments_of_the_wrong_shape():
    scorer = triage.Scorer(REPO / "models" / "default")

    with pytest.raises(TypeError, match="texts is one string"):
        triage.score_texts(scorer, "charged twice")
    with pytest.raises(ValueError, match="got 2 texts and 1"):
        triage.score_texts(scorer, ["a refund", "a fee"], metadata=[None])
    with pytest.raises(
        triage.InvalidComplaintError, match="complaint 0: the text is int"
    ):
        triage.score_texts(scorer, [123])
    with pytest.raises(triage.InvalidComplaintError, match="metadata is str"):
        triage.score_texts(scorer, ["a refund"], metadata=["company"])


def test_evaluate_refuses_a_limit_below_one():
    with pytest.raises(ValueError, match="got 0"):
        triage.evaluate(REPO / "models" / "default", "data/specs/cfpb.toml", limit=0)
