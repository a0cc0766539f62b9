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
    },
    "serving": {"training", "triage_cli", "torch", "transformers", "datasets"},
}


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
