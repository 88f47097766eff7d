"""Lint of migration and rollback scripts: idempotency (`idempotency`), plus squawk's lock
and rewrite rules with the safe form of each risky statement (`safe_forms`).

Locks, table rewrites and unsafe constraints are squawk's (the ``squawk-cli`` wheel): its
rules are maintained upstream and are not repeated here; the fix of its findings on a
statement that has a safe form is that form (and ``safe_sql`` its SQL).

squawk runs as one process per transaction mode present (usually one), started before our
own pass so that both run at the same time. Transactional scripts (migrations and
rollbacks) are linted with ``--assume-in-transaction``: squawk then knows the file is
atomic and that a table created earlier in it is new and empty, which silences re-run and
lock warnings that cannot happen; ``-- transaction: off`` files get
``--no-assume-in-transaction``, or squawk would wrongly flag their ``CREATE INDEX
CONCURRENTLY``. squawk runs in the migrations directory, so a
``.squawk.toml`` there or above it applies.

squawk is given each script's own text: a layout may make two scripts of one file
(dbmate's up and down sections) or blank part of it (golang-migrate's outer BEGIN/COMMIT).
A script that is not its file as read is written to a private temporary directory, one
sub-directory per role, under the file's own name; lines keep their numbers, so squawk's
findings map back to the real file one to one.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bilantools.source.config import CheckConfig, suppressed_rules
from bilantools.source.files import MigrationSet, Script, normalise
from bilantools.source.findings import Finding, Severity
from bilantools.source.headers import Limits
from bilantools.source.idempotency import idempotency
from bilantools.source.lock_scope import LOCK_RULES, engine_note, on_new_tables, timeout_advice_applies
from bilantools.source.parsed import ParsedStatement, parse_script
from bilantools.source.safe_forms import SafeForm, helper_drops, not_null_checks, safe_form
from bilantools.source.statements import SqlSyntaxError

SQUAWK_TIMEOUT_S = 120

# A target: its file and its role ("migration" or "rollback"). One file may hold both, as
# dbmate's sections do.
_Key = tuple[str, str]


@dataclass(frozen=True)
class _Target:
    script: Script
    in_transaction: bool  # the script's '-- transaction:' header
    what: str  # "migration" or "rollback", for messages
    limits: Limits  # the script's '-- lock-timeout:' and '-- statement-timeout:' headers


# squawk rules that forbid what a rollback exists to do (drop what its migration made), or
# advise what a transactional rollback cannot do (CONCURRENTLY needs '-- transaction: off').
ROLLBACK_DUTIES = frozenset(
    {
        "ban-drop-table",
        "ban-drop-column",
        "ban-drop-function",
        "ban-drop-view",
        "ban-drop-constraint",
        "ban-drop-not-null",
        "require-concurrent-index-deletion",
    }
)


@dataclass(frozen=True)
class _Span:
    """A statement's first line, the rules its ignore comments switch off, and whether it
    acts on a table created earlier in its script (see `lock_scope`)."""

    line: int
    suppressed: frozenset[str]
    on_new_table: bool = False
    statement: ParsedStatement | None = None  # for its safe form, written when squawk asks
    transactional: bool = True
    drops_not_null_check: bool = False  # the last step of a safe SET NOT NULL: no guarantee lost


def lint(
    migrations: MigrationSet, config: CheckConfig, engine_safe: list[Finding] | None = None
) -> list[Finding]:
    """Findings over every migration and rollback script, ordered by file, line and rule.

    `engine_safe`, when given, receives squawk's advice that the engine itself follows (the
    timeouts it sets), as notes: `check` says so instead of warning."""
    targets: dict[_Key, _Target] = {}
    for m in migrations:
        targets[str(m.script.path), "migration"] = _Target(m.script, m.transactional, "migration", m.limits)
        if m.rollback is not None:
            targets[str(m.rollback.path), "rollback"] = _Target(
                m.rollback, m.rollback_transactional, "rollback", m.rollback_limits
            )
    # outlives squawk's runs
    with tempfile.TemporaryDirectory(prefix="bilantools-squawk-", dir=_memory_backed()) as scratch:
        squawk = (
            None
            if "squawk" in config.disabled
            else _start_squawk(migrations.directory, Path(scratch), targets)
        )
        findings: list[Finding] = []
        spans: dict[_Key, list[_Span]] = {}
        parsed: dict[_Key, tuple[ParsedStatement, ...]] = {}
        for key, target in targets.items():
            try:
                statements = parse_script(target.script)
            except SqlSyntaxError as exc:
                findings.append(exc.finding())
                continue
            parsed[key] = statements
            spans[key] = [
                _Span(s.line, suppressed_rules(target.script.text, s.line), new, s, target.in_transaction)
                for s, new in zip(statements, on_new_tables(statements), strict=True)
            ]
            ignored = {span.line: span.suppressed for span in spans[key]}
            for stmt, rule, message, hint in idempotency(statements, target.what):
                if not _switched_off(rule, ignored[stmt.line]):
                    findings.append(Finding(rule, "warning", key[0], stmt.line, message, hint))

        checks = not_null_checks(tuple(s for statements in parsed.values() for s in statements))
        for key, statements in parsed.items():
            helpers = helper_drops(statements, checks)
            spans[key] = [replace(span, drops_not_null_check=span.line in helpers) for span in spans[key]]
        if isinstance(squawk, Finding):
            findings.append(squawk)
        elif squawk is not None:
            findings.extend(_squawk_findings(*squawk, migrations.directory, targets, spans, engine_safe))
    kept = [f for f in findings if not _switched_off(f.rule, config.disabled)]
    return sorted(kept, key=lambda f: (f.file, f.line or 0, f.rule, f.column or 0, f.message, f.hint))


def _switched_off(rule: str, off: frozenset[str]) -> bool:
    return rule in off or (rule.startswith("squawk:") and "squawk" in off)


# --- squawk ------------------------------------------------------------------------------


def squawk_binary() -> str | None:
    """The squawk executable: pip puts the wheel's binary in this interpreter's scripts dir."""
    return shutil.which("squawk", path=sysconfig.get_path("scripts")) or shutil.which("squawk")


def _start_squawk(
    directory: Path, scratch: Path, targets: dict[_Key, _Target]
) -> tuple[list[subprocess.Popen[str]], dict[str, _Key]] | Finding:
    """Start squawk on every script, one process per transaction mode, and the target of each
    path given to it; a Finding if it cannot run.

    A script that is not its file as read is written to `scratch`/<role>/<its name>.
    Paths are given relative to the migrations directory, squawk's working directory (so
    that its configuration applies): bare file names for files read by squawk itself (no
    glob characters, which squawk would expand); squawk reports them back as given.
    """
    binary = squawk_binary()
    if binary is None:
        return Finding(
            "squawk-missing",
            "warning",
            str(directory),
            None,
            "squawk is not installed, so lock, table-rewrite and constraint rules were not checked",
            "install it in the environment that runs bilantools: pip install squawk-cli",
        )
    given: dict[str, _Key] = {}
    for (file, what), target in targets.items():
        name = os.path.relpath(file, directory)
        if name in given or not _as_read(target.script):
            copy = scratch / what / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(target.script.text.encode())
            name = os.path.relpath(copy, directory)
        given[name] = (file, what)
    runs = []
    for in_transaction in (True, False):
        names = [name for name, key in given.items() if targets[key].in_transaction == in_transaction]
        if not names:
            continue
        flag = "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction"
        try:
            runs.append(
                subprocess.Popen(
                    [binary, "--reporter", "json", flag, *names],
                    cwd=directory,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                )
            )
        except OSError as exc:
            _collect(runs)
            return _squawk_failed(directory, f"{binary} cannot be started: {exc}")
    return runs, given


def _memory_backed() -> str | None:
    """/dev/shm when it is a writable directory, else None (the usual temporary directory).

    Squawk reads sections (a dbmate file's up and down, a Sqitch script without its
    BEGIN/COMMIT) from private copies; on a disk, creating and removing 1,000 of them
    took 0.7 s of a check, in memory 0.03 s.
    """
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _as_read(script: Script) -> bool:
    """Whether `script` is its whole file as read: squawk can then read the file itself,
    and reading it again costs far less than writing a copy."""
    try:
        return normalise(script.path.read_bytes()) == script.text
    except (OSError, UnicodeDecodeError):
        return False


def _collect(runs: list[subprocess.Popen[str]]) -> list[tuple[str, str, int]]:
    """(stdout, stderr, exit code) of each run; a run that hangs is killed."""
    results = []
    for run in runs:
        try:
            stdout, stderr = run.communicate(timeout=SQUAWK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.kill()
            stdout, stderr = run.communicate()
            stderr = f"no answer after {SQUAWK_TIMEOUT_S} s"
        results.append((stdout, stderr, run.returncode))
    return results


def _squawk_failed(directory: Path, reason: str) -> Finding:
    return Finding(
        "squawk-failed",
        "warning",
        str(directory),
        None,
        f"squawk did not check the migrations ({reason})",
        "run 'squawk --reporter json FILE.sql' in the migrations directory to see why, or disable 'squawk'",
    )


def _squawk_findings(
    runs: list[subprocess.Popen[str]],
    given: dict[str, _Key],
    directory: Path,
    targets: dict[_Key, _Target],
    spans: dict[_Key, list[_Span]],
    engine_safe: list[Finding] | None,
) -> list[Finding]:
    """squawk's violations as findings, or one squawk-failed finding if squawk misbehaves.

    A statement with a safe form keeps one finding for the rules that form answers (squawk
    reports a foreign key under two), with that form as its fix."""
    findings = []
    safe: dict[tuple[str, int], tuple[int, Finding]] = {}  # (file, statement line) -> (rank, finding)
    lines: dict[_Key, list[str]] = {}
    for stdout, stderr, code in _collect(runs):
        try:
            violations = json.loads(stdout)
        except ValueError:
            violations = None
        if not isinstance(violations, list):
            reason = stderr.strip().split("\n")[0] or "no JSON on its output"
            return [_squawk_failed(directory, f"exit code {code}: {reason}")]
        for violation in violations:
            key = given[violation["file"]]  # squawk names the files as it was given them
            target, rule = targets[key], violation["rule_name"]
            if target.what == "rollback" and rule in ROLLBACK_DUTIES:
                continue
            if not timeout_advice_applies(rule, target.limits):
                if engine_safe is not None:
                    engine_safe.append(engine_note(rule, key[0], int(violation["line"]) + 1, target.limits))
                continue
            if key not in lines:
                lines[key] = target.script.text.split("\n")
            found = _from_squawk(violation, key[0], lines[key], spans.get(key))
            if found is None:
                continue
            finding, form, statement_line = found
            if form is None:
                findings.append(finding)
                continue
            rank = form.answers.index(rule)
            if (key[0], statement_line) not in safe or rank < safe[key[0], statement_line][0]:
                safe[key[0], statement_line] = (rank, finding)
    return findings + [finding for _, finding in safe.values()]


def _from_squawk(
    violation: dict[str, Any], file: str, lines: list[str], spans: list[_Span] | None
) -> tuple[Finding, SafeForm | None, int] | None:
    """One squawk violation as a Finding, with the safe form it gives as its fix and its
    statement's line; None when an ignore comment or a new table drops it, or it is the
    drop of the CHECK a safe SET NOT NULL no longer needs.

    `spans` is None for a file PostgreSQL's parser rejected.
    """
    line = int(violation["line"]) + 1  # squawk counts lines from 0 and columns in bytes from 0
    text = lines[line - 1] if line <= len(lines) else ""
    column = len(text.encode()[: int(violation["column"])].decode(errors="ignore")) + 1
    rule = f"squawk:{violation['rule_name']}"
    severity: Severity = "error" if violation.get("level") == "Error" else "warning"
    message, hint = str(violation["message"]), str(violation.get("help") or "")
    if violation["rule_name"] == "syntax-error":
        if spans is None:  # already reported, by PostgreSQL's own parser
            return None
        severity = "warning"  # PostgreSQL accepts the SQL: squawk's parser is behind
        message = f"squawk cannot parse this statement ({message}), so its rules skipped it"
        hint = "upgrade squawk-cli; the SQL is valid for PostgreSQL"
    index = bisect.bisect_right(spans or [], line, key=lambda span: span.line) - 1
    if spans and index >= 0:
        span = spans[index]
        if (
            _switched_off(rule, span.suppressed)
            or (span.on_new_table and violation["rule_name"] in LOCK_RULES)
            or (span.drops_not_null_check and violation["rule_name"] == "ban-drop-constraint")
        ):
            return None
        form = None if span.statement is None else safe_form(span.statement, span.transactional)
        if form is not None and violation["rule_name"] in form.answers:
            return Finding(rule, severity, file, line, message, form.hint, column, form.sql), form, span.line
    return Finding(rule, severity, file, line, message, hint, column), None, line
