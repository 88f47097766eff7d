"""The front door's shape: keyword-only calls, one `Project` read once and reused across
calls and targets, one `RunOptions` checked when it is made."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from bilantools import commands, project
from bilantools.commands import Project, RunOptions
from bilantools.db.sandbox import Sandbox
from bilantools.errors import InputError
from bilantools.source.files import MigrationSet
from bilantools.source.layouts import LayoutName, discover

pytestmark = pytest.mark.pg15


def test_every_public_function_takes_keywords_only() -> None:
    for name in commands.__all__:
        function = getattr(commands, name)
        # The front door's own functions, and its fleet part (re-exported from fleet/front.py).
        if not inspect.isfunction(function) or function.__module__ not in (
            "bilantools.commands",
            "bilantools.fleet.front",
        ):
            continue
        kinds = {p.kind for p in inspect.signature(function).parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, name
    with pytest.raises(TypeError):
        commands.status(None, "migrations")  # type: ignore[call-arg]


def test_a_reused_project_reads_its_directory_once(
    db_url: str, basic: Path, server: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []

    def counted(directory: Path, layout: LayoutName) -> MigrationSet:
        reads.append(Path(directory))
        return discover(directory, layout)

    monkeypatch.setattr(project, "discover", counted)
    shared = Project.load(basic)
    assert reads == []  # lazily: nothing is read until a call needs it
    other = server.new_db("t_front_door_other")
    try:
        for target in (db_url, other):  # one project, two databases
            commands.plan(target=target, project=shared)
            commands.apply(target=target, project=shared, options=RunOptions(step=1))
            commands.apply(target=target, project=shared)
            assert commands.status(target=target, project=shared).summary() == "3 migrations: 3 applied"
    finally:
        server.drop_db("t_front_door_other")
    assert not commands.check(project=shared).errors
    assert reads == [basic]
    commands.status(target=db_url, project=basic)  # a path: a fresh read
    assert reads == [basic, basic]


def test_run_options_are_checked_when_made_and_name_the_parameter() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"step": 0}, "step=0: pass a number of migrations of 1 or more"),
        ({"lock_wait": -1}, "lock_wait=-1: pass a number of seconds of 0 or more"),
        ({"lock_timeout": "soon"}, "lock_timeout=soon is not a duration"),
        ({"statement_timeout": "1.5s"}, "statement_timeout=1.5s is not a duration"),
        ({"to": 17}, "to=17: pass the version as text"),
        ({"dry_run": "yes"}, "dry_run=yes: pass True or False"),
    ]
    for values, message in cases:
        with pytest.raises(InputError) as caught:
            RunOptions(**values)
        assert message in str(caught.value)
        assert caught.value.params == (next(iter(values)),)
    with pytest.raises(InputError, match="no run option named steps"):
        RunOptions().but(steps=1)


def test_but_changes_a_copy() -> None:
    options = RunOptions(to="003", lock_wait=5)
    changed = options.but(to=None, step=1)
    assert (changed.to, changed.step, changed.lock_wait) == (None, 1, 5)
    assert (options.to, options.step) == ("003", None)
    with pytest.raises(InputError, match="step=0"):
        options.but(step=0)


def test_a_project_knows_its_layout() -> None:
    assert Project.load("migrations").layout == "bilantools"
    with pytest.raises(InputError, match="unknown migrations layout 'liquibase'"):
        Project.load("migrations", layout="liquibase")


def test_an_error_names_options_as_python_and_as_the_cli() -> None:
    """The same message tells a Python caller its parameters and a CLI user its flags."""
    from bilantools.cli.flags import spell
    from bilantools.errors import InputError, option

    exc = InputError(
        f"{option('to')} and {option('step')} cannot be used together; pass {option('force', True)} "
        f"or {option('lock_wait', 60)} ({option('target', 'URL')})"
    )
    assert str(exc) == "to and step cannot be used together; pass force=True or lock_wait=60 (target=URL)"
    assert (
        exc.render(spell)
        == "--to and --step cannot be used together; pass --force or --lock-wait 60 (--db URL)"
    )
    assert exc.params == ("to", "step", "force", "lock_wait", "target")
