"""The layout DESIGN.md draws, checked on the source: one-way imports between the wings, and torch
only in `models/`. There is no size cap: a module holds one job, whatever its length.

Read with `ast`, so nothing is imported and the check takes milliseconds. Each rule names the
file and line that breaks it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qsearch"
# Each part of the package and the parts it may import (besides itself).
BASE = {"config", "types"}
ALLOWED = {
    "config": set(),
    "types": {"config"},
    "documents": BASE,
    "models": BASE,
    "store": BASE,
    "search": BASE | {"models", "store"},
    "indexing": BASE | {"documents", "models", "store"},  # the engine's batch adding
    "engine": BASE | {"documents", "models", "store", "search", "indexing"},
    "library": BASE | {"store", "engine"},  # a user's named collections, over engines
    "evaluate": BASE | {"documents", "models", "store", "search", "engine"},
    "labelled": BASE | {"search", "engine", "evaluate"},  # the page's retrieval test
    "cli_flags": BASE | {"documents", "models", "store", "search", "engine"},
    "app_flags": BASE | {"cli_flags"},
    "__main__": BASE
    | {"documents", "models", "store", "search", "engine", "library", "evaluate", "cli_flags"},
    "__init__": BASE | {"documents", "models", "store", "search", "engine", "library"},
    "web": BASE
    | {
        "documents",
        "models",
        "store",
        "search",
        "engine",
        "library",
        "cli_flags",
        "app_flags",
        "labelled",
    },
}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + [ROOT / "app.py"]


def _part(path: Path) -> str:
    """The wing (documents, models, ...) or top-level module a file belongs to."""
    relative = path.relative_to(PACKAGE).parts
    return relative[0] if len(relative) > 1 else Path(relative[0]).stem


def _imported_parts(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, part of qsearch) for every import of qsearch code in `tree`."""
    package = path.relative_to(PACKAGE).parent.parts
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)])
            names = (node.module or "").split(".") if node.module else []
            target = base + names
            if target:
                found.append((node.lineno, target[0]))
            else:  # `from . import x` at the top of the package
                found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qsearch."):
            found.append((node.lineno, node.module.split(".")[1]))
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_imports_go_one_way(path: Path) -> None:
    part = _part(path)
    allowed = ALLOWED[part] | {part}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = [
        f"line {n}: imports {target}"
        for n, target in _imported_parts(path, tree)
        if target not in allowed
    ]
    assert not wrong, (
        f"{path.relative_to(ROOT)} ({part}) may import only {sorted(allowed)}: {wrong}"
    )


def _imports_of(tree: ast.AST) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append((node.lineno, node.module.split(".")[0]))
    return names


def test_only_models_import_torch() -> None:
    wrong = []
    for path in _sources():
        if path.is_relative_to(PACKAGE / "models"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        wrong += [
            f"{path.relative_to(ROOT)}:{n}" for n, name in _imports_of(tree) if name == "torch"
        ]
    assert not wrong, f"torch is imported outside qsearch/models/: {wrong}"


def test_the_checks_see_a_wrong_import() -> None:
    """The import reader finds an upward import written each way it can be written."""
    fake = PACKAGE / "store" / "example.py"
    for source in ("from ..web import render", "from qsearch.web.render import x"):
        tree = ast.parse(source)
        assert [t for _, t in _imported_parts(fake, tree)] == ["web"], source
    tree = ast.parse("from . import bm25\nfrom ..config import Settings")
    assert [t for _, t in _imported_parts(fake, tree)] == ["store", "config"]
