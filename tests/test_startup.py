"""Start-up stays light (issue 18, item 11), checked by what is imported, never by a timing.

Each check runs a fresh interpreter and lists the modules of HEAVY (and of the other
commands) that it imported: `bilantools status` must not pay for pandas, the SQL parser,
the notebook stack or the fleet machinery, on its --help as on a real run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from bilantools.cli.main import COMMANDS
from bilantools.cli.main import cli as group

ROOT = Path(__file__).resolve().parents[1]
# Imported only by the commands (or functions) that use them.
HEAVY = (
    "pandas",
    "numpy",
    "sqlalchemy",
    "ipywidgets",
    "IPython",
    "matplotlib",
    "papermill",
    "nbformat",
    "pglast",
    "rich",
    "tqdm",
    "bilantools.source.check",
    "bilantools.source.analysis",
)
# The modules of commands other than status and apply.
OTHER_COMMANDS = (
    "bilantools.cli.fleet",
    "bilantools.cli.backup",
    "bilantools.cli.runbook",
    "bilantools.cli.adopt",
    "bilantools.cli.sandbox",
    "bilantools.fleet",
    "bilantools.db.health",
    "bilantools.db.backup",
)

PROBE = """
import json, sys
{code}
names = {names!r}
print(json.dumps(sorted(n for n in names if n in sys.modules)))
"""


def imported(code: str, names: tuple[str, ...], cwd: Path = ROOT) -> list[str]:
    """The modules among `names` that a new interpreter has imported after running `code`."""
    probe = PROBE.format(code=code, names=names)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, check=False)
    assert r.returncode == 0, r.stderr
    found: list[str] = json.loads(r.stdout.strip().splitlines()[-1])
    return found


def run_cli(*args: str) -> str:
    """`bilantools ARGS` run in the probe, its exit caught, its output discarded."""
    return (
        "import contextlib, io\n"
        "from bilantools.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    try:\n"
        f"        main({list(args)!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
    )


def test_importing_the_cli_imports_no_command_and_nothing_heavy() -> None:
    assert imported("import bilantools.cli.main", HEAVY + OTHER_COMMANDS + ("bilantools.cli.run",)) == []


def test_status_help_imports_only_its_own_command() -> None:
    assert imported(run_cli("status", "--help"), HEAVY + OTHER_COMMANDS) == []


def test_status_and_a_repeated_apply_import_nothing_heavy(db_url: str, tmp_path: Path) -> None:
    """On a real server: status, then apply of files whose check is remembered (the
    timed CLI runs of bench/compare.py) import neither the parser nor other commands."""
    migrations = str(ROOT / "migrations")
    base = ("--db", db_url, "--migrations", migrations)
    # a first apply remembers the check (it needs the parser), in BILANTOOLS_HOME
    assert imported(run_cli(*base, "apply", "--yes"), ()) == []
    assert imported(run_cli(*base, "status"), HEAVY + OTHER_COMMANDS + ("bilantools.cli.run",)) == []
    applied = imported(run_cli(*base, "apply", "--yes"), HEAVY + OTHER_COMMANDS + ("bilantools.cli.inspect",))
    assert applied == []


def test_every_lazy_command_is_the_command_of_its_name() -> None:
    """The table of `bilantools.cli.main` names each command where it is defined."""
    assert sorted(group.commands) == sorted(COMMANDS)
    for name in COMMANDS:
        command = group.commands[name]
        assert isinstance(command, click.Command) and command.name == name
