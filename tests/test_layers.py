"""The rooms point one way: the domain knows neither serving nor training, serving knows no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "triage": {
        "serving",
        "training",
        "triage_cli",
        "torch",
        "transformers",
        "datasets",
        "fastapi",
        "starlette",
        "sqlalchemy",
        "alembic",
        "jinja2",
        "ray",
    },
    "serving": {"training", "triage_cli", "torch", "transformers", "datasets"},
    "batch": {
        "serving",
        "training",
        "triage_cli",
        "torch",
        "transformers",
        "datasets",
        "fastapi",
        "sqlalchemy",
    },
}
# Ray is an optional extra: only these modules import it, and nothing imports them but the
# command line, inside its commands.
RAY_MODULES = {"serving/ray_serve.py", "batch/ray_data.py"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_only_what_it_may(room):
    offending = {
        str(path.relative_to(REPO)): sorted(_imports(path) & FORBIDDEN[room])
        for path in (REPO / room).rglob("*.py")
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_only_the_ray_modules_import_ray():
    importing = {
        str(path.relative_to(REPO))
        for room in ("triage", "serving", "batch", "training", "triage_cli")
        for path in (REPO / room).rglob("*.py")
        if "ray" in _imports(path)
    }
    assert importing == RAY_MODULES
    for path in (REPO / "serving").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "ray_serve" not in text or path.name == "ray_serve.py", path
