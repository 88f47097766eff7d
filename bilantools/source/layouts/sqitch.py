"""The Sqitch layout: ``sqitch.plan`` with ``deploy/``, ``revert/`` and ``verify/`` scripts.

The project directory holds the plan (read by `sqitch_plan`) and one script per change in
each folder: ``deploy/<name>.sql`` is the migration, ``revert/<name>.sql`` its rollback,
``verify/<name>.sql`` what `verify` runs. A reworked change's earlier instance has its
scripts under ``<name>@<tag>.sql``. Order is the plan's; a migration's version (what the
tracking table stores and ``--to`` names) is its key: the change name as the plan spells
it, ``name@tag`` for an earlier instance of a reworked one; ``--to @tag`` names the change
the tag marks.

Sqitch's templates wrap deploy and revert scripts in ``BEGIN;`` ... ``COMMIT;``: that outer
pair is blanked and the script runs in bilantools' transaction with its tracking row, as a
golang-migrate file's does. Sqitch runs scripts through psql; bilantools sends them to the
server itself, so a psql meta-command (``\\set``, ``\\i``, ``\\ir``, ...) is an error finding
naming its line, never skipped. ``sqitch.conf`` is read only to refuse the settings that
would move the scripts (``top_dir``, ``deploy_dir``, ``plan_file``, ``extension``, ...):
the defaults are what this layout reads.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from bilantools.errors import InputError
from bilantools.source.files import (
    VERSION_MAX_LENGTH,
    Entry,
    MigrationSet,
    Script,
    normalise,
    read_script,
)
from bilantools.source.findings import Finding
from bilantools.source.headers import Headers
from bilantools.source.layouts.sqitch_plan import (
    FULL_NAME,
    PLAN_FILE,
    Change,
    Plan,
    parse_plan,
    position_of,
)
from bilantools.source.layouts.walk import finish, headers_of, require_directory, unwrap_transaction

NAME = "sqitch"
NAMING = "sqitch.plan with deploy/, revert/ and verify/ scripts"
CONF_FILE = "sqitch.conf"
FOLDERS = ("deploy", "revert", "verify")
_META = re.compile(r"^[ \t]*(\\[A-Za-z!?]+)")
# sqitch.conf keys that move the plan or the scripts away from where this layout reads them.
_MOVED = frozenset(
    {
        "top_dir",
        "plan_file",
        "deploy_dir",
        "revert_dir",
        "verify_dir",
        "reworked_dir",
        "reworked_deploy_dir",
        "reworked_revert_dir",
        "reworked_verify_dir",
        "extension",
    }
)
_SECTION = re.compile(r'^\[\s*(?P<section>[A-Za-z0-9.-]+)(?:\s+"(?P<sub>[^"]*)")?\s*\]')
_ASSIGNMENT = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*)\s*(?:=\s*(?P<value>.*))?$")


def score(files: list[Path]) -> int:
    """0: a Sqitch project's scripts are in its folders, and `claims` looks for its plan."""
    return 0


def claims(directory: Path) -> bool:
    """Whether `directory` is a Sqitch project (it holds a sqitch.plan)."""
    return (directory / PLAN_FILE).is_file()


def read_plan(directory: Path, provided: frozenset[str] = frozenset()) -> Plan:
    """The parsed plan of the Sqitch project in `directory` (InputError if it cannot be
    read): its project name, and per change its name, key, planner, note and tags."""
    path = directory / PLAN_FILE
    try:
        text = normalise(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror}); make it readable") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 (at byte {exc.start}); save it as UTF-8") from None
    return parse_plan(path, text, provided)


def verify_paths(directory: Path, keys: list[str]) -> list[tuple[str, Path]]:
    """(key, verify script) for each of the changes `keys` that has one, in that order."""
    paths = [(key, directory / "verify" / f"{key}.sql") for key in keys]
    return [(key, path) for key, path in paths if path.is_file()]


def script_path(directory: Path, folder: str, change: Change) -> Path:
    """Where Sqitch keeps one script of `change` ('app/users' -> deploy/app/users.sql)."""
    return directory / folder / f"{change.key}.sql"


def discover(directory: Path) -> MigrationSet:
    """The migrations of the Sqitch project in `directory`, in plan order; problems
    become findings."""
    from bilantools.source.config import load_config

    require_directory(directory)
    if not claims(directory):
        raise InputError(
            f"{directory} has no {PLAN_FILE}: a Sqitch project keeps its plan there; "
            "pass the directory that holds sqitch.plan"
        )
    plan = read_plan(directory, load_config(directory.absolute()).provided)
    positions = {c.key: i for i, c in enumerate(plan.changes)}
    found = MigrationSet(
        directory,
        layout=NAME,
        key_of=lambda text: _key_of(plan, text),
        order_of=lambda text: (positions[text],) if text in positions else None,
    )
    found.findings.extend(sorted(plan.findings, key=lambda f: f.line or 0))
    found.findings.extend(_conf_findings(directory))
    entries = [e for at in range(len(plan.changes)) if (e := _entry(directory, plan, at, found))]
    found.findings.extend(_unplanned(directory, plan))
    return finish(found, entries)


def _key_of(plan: Plan, text: str) -> str | None:
    """The key of the change `text` names as Sqitch's --to does ('name', 'name@tag',
    '@tag'); a well-formed name the plan no longer has stands for itself (a history row
    whose change was removed); anything else is not a Sqitch change."""
    at = plan.index_of(text)
    if at is not None:
        return plan.changes[at].key
    name, sep, tag = text.partition("@")
    if FULL_NAME.match(name) and (not sep or FULL_NAME.match(tag)):
        return text
    return None


def _entry(directory: Path, plan: Plan, position: int, found: MigrationSet) -> Entry | None:
    change = plan.changes[position]
    deploy_path = script_path(directory, "deploy", change)
    if len(change.key) > VERSION_MAX_LENGTH:
        found.findings.append(
            Finding(
                "version-too-long",
                "error",
                str(plan.path),
                change.line,
                f"change '{change.key}' has a name of {len(change.key)} characters; the tracking "
                f"table stores versions of at most {VERSION_MAX_LENGTH} characters",
                f"rename the change (and its scripts) to at most {VERSION_MAX_LENGTH} characters",
            )
        )
        return None
    verify_path = script_path(directory, "verify", change)
    if verify_path.is_file():  # read by `verify`; its problems are the project's too
        _script(verify_path, found, empty_ok=True)
    if not deploy_path.is_file():
        found.findings.append(
            Finding(
                "missing-script",
                "error",
                str(plan.path),
                change.line,
                f"change '{change.key}' has no deploy script {deploy_path.relative_to(directory)}",
                "add the script, or remove the change from the plan",
            )
        )
        return None
    script = _script(deploy_path, found)
    if script is None:
        return None
    headers = headers_of(script, found)
    if headers is None:
        return None
    if headers.depends:
        found.findings.append(
            Finding(
                "header",
                "error",
                str(deploy_path),
                None,
                "'-- depends:' has no meaning in a Sqitch project: the plan's [...] list says what a "
                "change requires",
                f"remove the line and list the requirements in {PLAN_FILE}",
            )
        )
    revert_path = script_path(directory, "revert", change)
    rollback = _script(revert_path, found, empty_ok=True) if revert_path.is_file() else None
    rollback_headers = (headers_of(rollback, found) if rollback is not None else None) or Headers()
    requires = tuple(_requirement_keys(plan, position))
    return Entry(
        change.key,
        change.name,
        unwrap_transaction(script) if headers.transactional else script,
        replace(headers, depends=requires),
        unwrap_transaction(rollback) if rollback is not None and rollback_headers.transactional else rollback,
        rollback_headers,
        f"add {revert_path.relative_to(directory)}",
    )


def _requirement_keys(plan: Plan, position: int) -> list[str]:
    """The keys of the changes of this plan that the change at `position` requires,
    planned before it (the plan's findings name the others)."""
    keys = []
    for dep in plan.changes[position].requires:
        at = position_of(plan, dep.key, position) if dep.project is None and dep.change_id is None else None
        if at is not None and at < position:
            keys.append(plan.changes[at].key)
    return keys


def _script(path: Path, found: MigrationSet, *, empty_ok: bool = False) -> Script | None:
    """The script at `path`, or None after the finding that says why not (unreadable, no
    SQL, a psql meta-command)."""
    script = read_script(path, found.findings, empty_ok=empty_ok)
    if script is None:
        return None
    meta = meta_commands(script)
    found.findings.extend(meta)
    return None if meta else script


def meta_commands(script: Script) -> list[Finding]:
    """An error finding per line of `script` that starts with a psql meta-command."""
    findings = []
    for number, line in enumerate(script.text.split("\n"), start=1):
        match = _META.match(line)
        if match:
            findings.append(
                Finding(
                    "psql-meta-command",
                    "error",
                    str(script.path),
                    number,
                    f"psql meta-command '{match[1]}' in a Sqitch script: bilantools sends scripts to "
                    "the server, not through psql, and runs no meta-command",
                    "write it as SQL (a \\set variable's value in place, an \\i file's statements inline)",
                )
            )
    return findings


def _conf_findings(directory: Path) -> list[Finding]:
    """Errors for sqitch.conf settings that move the plan or the scripts (see `_MOVED`)."""
    path = directory / CONF_FILE
    if not path.is_file():
        return []
    try:
        text = normalise(path.read_bytes())
    except (OSError, UnicodeDecodeError):
        return []  # Sqitch reads it, bilantools needs nothing else from it
    findings, section = [], ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        header = _SECTION.match(line)
        if header:
            section = header["section"].lower()
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and section in ("core", "engine", "target") and assignment["key"].lower() in _MOVED:
            findings.append(
                Finding(
                    "sqitch-conf",
                    "error",
                    str(path),
                    number,
                    f"{CONF_FILE} sets {section}.{assignment['key']}: bilantools reads sqitch.plan and "
                    "deploy/, revert/, verify/ *.sql in the project directory only",
                    "move the files there and remove the setting, or pass the directory that holds them",
                )
            )
    return findings


def _unplanned(directory: Path, plan: Plan) -> list[Finding]:
    """A warning per deploy script that no change of the plan names (Sqitch ignores it)."""
    planned = {script_path(directory, "deploy", c) for c in plan.changes}
    deploy = directory / "deploy"
    if not deploy.is_dir():
        return []
    return [
        Finding(
            "unplanned-script",
            "warning",
            str(path),
            None,
            f"{path.relative_to(directory)} is not in {PLAN_FILE}: it is never deployed",
            "add its change to the plan ('sqitch add') or remove the file",
        )
        for path in sorted(deploy.rglob("*.sql"))
        if path not in planned
    ]
