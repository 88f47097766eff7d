"""The import rule of the house: dependencies point down only.

source/ (files on disk) imports nothing above it; db/ imports neither the front door nor
a face; the faces (cli/, notebook/) reach the package only through the front door
(`bilantools.commands`), never db/ or source/. Checked by parsing every module with
`ast`, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bilantools"

# The front door's floor: the commands package and what it is made of.
FRONT = (
    "bilantools.commands",
    "bilantools.project",
    "bilantools.options",
    "bilantools.session",
    "bilantools.runbooks",
    "bilantools.fleet",  # rollouts over many databases, made of commands.* calls
)
FACES = ("bilantools.cli", "bilantools.notebook")
LOWER = ("bilantools.db", "bilantools.source")
# A module under the first prefix must not import one under any of the others.
# The faces reach the fleet package, too, through the front door's re-exports.
RULES: dict[str, tuple[str, ...]] = {
    "bilantools.cli": (*LOWER, "bilantools.fleet"),
    "bilantools.notebook": (*LOWER, "bilantools.fleet"),
    "bilantools.db": FRONT + FACES,
    "bilantools.source": ("bilantools.db", *FRONT, *FACES),
}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imported(tree: ast.AST, module: str) -> Iterator[tuple[int, str]]:
    """(line, module name) of every import in `tree`, relative ones resolved against
    `module`; ``from bilantools import commands`` names bilantools.commands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            if base == "bilantools":  # the names are modules: `from bilantools import db`
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"
            else:
                yield node.lineno, base


def violations(module: str, source: str) -> list[str]:
    """Each import of `module` (given as source text) that breaks the rule, as
    "<module>:<line> imports <name>"."""
    found = []
    for prefix, banned in RULES.items():
        if not within(module, prefix):
            continue
        for line, name in imported(ast.parse(source), module):
            if any(within(name, b) for b in banned):
                found.append(f"{module}:{line} imports {name}")
    return sorted(set(found))


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_imports_a_floor_it_must_not() -> None:
    checked = {name for name, _ in modules() if any(within(name, p) for p in RULES)}
    assert {"bilantools.cli.main", "bilantools.notebook.apply", "bilantools.db.runner"} <= checked
    broken = [v for name, path in modules() for v in violations(name, path.read_text(encoding="utf-8"))]
    assert not broken, "imports against the rule of the house:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "bilantools.cli.fake",
            "from bilantools.db.runner import Status\n",
            "bilantools.cli.fake:1 imports bilantools.db.runner",
        ),
        (
            "bilantools.notebook.fake",
            "import click\n\ndef f():\n    import bilantools.source.files\n",
            "bilantools.notebook.fake:4 imports bilantools.source.files",
        ),
        (
            "bilantools.notebook.fake",
            "from ..db import lock\n",
            "bilantools.notebook.fake:1 imports bilantools.db",
        ),
        ("bilantools.cli.fake", "from bilantools import db\n", "bilantools.cli.fake:1 imports bilantools.db"),
        (
            "bilantools.db.fake",
            "from bilantools import commands\n",
            "bilantools.db.fake:1 imports bilantools.commands",
        ),
        (
            "bilantools.source.fake",
            "from bilantools.db.history import tracking\n",
            "bilantools.source.fake:1 imports bilantools.db.history",
        ),
    ],
)
def test_the_rule_names_the_module_and_the_import(module: str, source: str, expected: str) -> None:
    assert expected in violations(module, source)


def test_the_front_door_and_errors_are_allowed_to_faces() -> None:
    source = (
        "from bilantools import commands\nfrom bilantools.commands import Status\nimport bilantools.errors\n"
    )
    assert violations("bilantools.cli.fake", source) == []
