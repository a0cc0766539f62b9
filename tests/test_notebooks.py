"""The notebooks: stored without outputs, using only the public API, and run end to end with
nbclient on a few hundred complaints and the committed bundle, so they cannot rot."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import nbformat
import pytest

import triage
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ALLOWED_MODULES = {"os", "numpy", "matplotlib", "triage"}


def _code(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_there_are_notebooks_to_run():
    names = {path.stem for path in NOTEBOOKS}
    assert {"explore_dataset", "evaluate_model", "choose_threshold"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: clear the outputs before committing "
                "(jupyter nbconvert --clear-output --inplace notebooks/*.ipynb)"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_the_public_api(path: Path):
    for source in _code(path):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                assert node.module in ALLOWED_MODULES | {"matplotlib.pyplot"}, (
                    node.module
                )
                if node.module == "triage":
                    assert {a.name for a in node.names} <= set(triage.__all__)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in ALLOWED_MODULES - {"triage"}, (
                        alias.name
                    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbclient import NotebookClient

    # Small data, a headless plotting backend, and the checkout importable in the kernel.
    monkeypatch.setenv("TRIAGE_NOTEBOOK_ROOT", str(REPO))
    monkeypatch.setenv("TRIAGE_NOTEBOOK_LIMIT", "300")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    )
    client.execute()
    printed = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    assert printed, f"{path.name} ran but showed nothing"
    assert not [o for o in printed if o.output_type == "error"]
