"""Lint of migration and rollback scripts: idempotency, plus squawk's lock and rewrite rules.

Idempotency is ours: a database migrated by hand with psql may already hold a migration's
objects, so re-running it must not fail with "already exists" (and a rollback re-run must
not fail with "does not exist"). Locks, table rewrites and unsafe constraints are squawk's
(the ``squawk-cli`` wheel): its rules are maintained upstream and are not repeated here.

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
import re
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilantools.source.config import CheckConfig, suppressed_rules
from bilantools.source.files import MigrationSet, Script, normalise
from bilantools.source.findings import Finding, Severity
from bilantools.source.headers import Limits
from bilantools.source.lock_scope import LOCK_RULES, on_new_tables, timeout_advice_applies
from bilantools.source.parsed import Node, ParsedStatement, parse_script
from bilantools.source.statements import SqlSyntaxError
from bilantools.source.trees import object_words

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


def lint(migrations: MigrationSet, config: CheckConfig) -> list[Finding]:
    """Findings over every migration and rollback script, ordered by file, line and rule."""
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
        for key, target in targets.items():
            try:
                statements = parse_script(target.script)
            except SqlSyntaxError as exc:
                findings.append(exc.finding())
                continue
            spans[key] = [
                _Span(s.line, suppressed_rules(target.script.text, s.line), new)
                for s, new in zip(statements, on_new_tables(statements), strict=True)
            ]
            ignored = {span.line: span.suppressed for span in spans[key]}
            for stmt, rule, message, hint in _idempotency(statements, target.what):
                if not _switched_off(rule, ignored[stmt.line]):
                    findings.append(Finding(rule, "warning", key[0], stmt.line, message, hint))

        if isinstance(squawk, Finding):
            findings.append(squawk)
        elif squawk is not None:
            findings.extend(_squawk_findings(*squawk, migrations.directory, targets, spans))
    kept = [f for f in findings if not _switched_off(f.rule, config.disabled)]
    return sorted(kept, key=lambda f: (f.file, f.line or 0, f.rule, f.column or 0, f.message, f.hint))


def _switched_off(rule: str, off: frozenset[str]) -> bool:
    return rule in off or (rule.startswith("squawk:") and "squawk" in off)


# --- idempotency -------------------------------------------------------------------------


def _idempotency(
    statements: tuple[ParsedStatement, ...], what: str
) -> Iterator[tuple[ParsedStatement, str, str, str]]:
    """(statement, rule, message, hint) for each statement that fails when the file is re-run.

    A CREATE POLICY/TRIGGER is safe after any DROP of the same object earlier in the file:
    a DROP lacking IF EXISTS is reported once, by drop-without-if-exists.
    """
    fails = f"fails when the {what} is re-run"
    dropped: set[tuple[str, str, str]] = set()  # (POLICY|TRIGGER, name, table without schema)
    for stmt in statements:
        node, kind = stmt.node, stmt.kind
        temporary = (
            kind == "CreateStmt" and node["relation"]["relpersistence"] == "t"
        )  # gone with its session
        if kind == "CreateStmt" and not node.get("if_not_exists") and not temporary:
            name = _rel(node["relation"])
            yield (stmt, *_missing_clause("create-table-not-idempotent", "TABLE", name, fails, replace=False))
        elif kind == "CreateTableAsStmt" and not node.get("if_not_exists"):
            name = _rel(node["into"]["rel"])
            rule, words = (
                ("create-object-not-idempotent", "MATERIALIZED VIEW")
                if node.get("objtype") == "OBJECT_MATVIEW"
                else ("create-table-not-idempotent", "TABLE")
            )
            yield (
                stmt,
                rule,
                f"CREATE {words} {name} AS without IF NOT EXISTS {fails}",
                f"write CREATE {words} IF NOT EXISTS {name} AS ...",
            )
        elif kind == "IndexStmt" and not node.get("if_not_exists"):
            words = "CREATE UNIQUE INDEX" if node.get("unique") else "CREATE INDEX"
            words += " CONCURRENTLY" if node.get("concurrent") else ""
            table, index = _rel(node["relation"]), node.get("idxname")
            yield (
                stmt,
                "create-index-not-idempotent",
                f"{words} {index or '(unnamed)'} ON {table} without IF NOT EXISTS {fails}",
                f"write {words} IF NOT EXISTS {index} ON {table}"
                if index
                else f"name the index and write {words} IF NOT EXISTS <name> ON {table}",
            )
        elif kind == "AlterTableStmt":
            yield from ((stmt, *problem) for problem in _alter_table(node, fails))
        elif kind in ("CreatePolicyStmt", "CreateTrigStmt"):
            what_obj = "POLICY" if kind == "CreatePolicyStmt" else "TRIGGER"
            name = node["policy_name"] if what_obj == "POLICY" else node["trigname"]
            relation = node["table"] if what_obj == "POLICY" else node["relation"]
            if node.get("replace") or (what_obj, name, relation["relname"]) in dropped:
                continue
            table = _rel(relation)
            drop = f"DROP {what_obj} IF EXISTS {name} ON {table};"
            alternative = (
                " (or CREATE OR REPLACE TRIGGER, PostgreSQL 14+)"
                if what_obj == "TRIGGER" and not node.get("isconstraint")
                else ""
            )
            yield (
                stmt,
                f"create-{what_obj.lower()}-without-drop",
                f"CREATE {what_obj} {name} ON {table} is not preceded by a DROP {what_obj} IF EXISTS "
                f"of it and {fails}",
                f"write {drop} just before it{alternative}",
            )
        elif kind == "CreateFunctionStmt" and not node.get("replace"):
            words = "PROCEDURE" if node.get("is_procedure") else "FUNCTION"
            name = ".".join(_strings(node["funcname"]))
            yield (stmt, *_missing_clause("create-function-not-replace", words, name, fails, replace=True))
        elif kind == "ViewStmt" and not node.get("replace"):
            name = _rel(node["view"])
            yield (stmt, *_missing_clause("create-object-not-idempotent", "VIEW", name, fails, replace=True))
        elif kind in ("CreateSchemaStmt", "CreateSeqStmt", "CreateExtensionStmt") and not node.get(
            "if_not_exists"
        ):
            words, name = _created(kind, node)
            yield (stmt, *_missing_clause("create-object-not-idempotent", words, name, fails, replace=False))
        elif kind in ("CreateEnumStmt", "CompositeTypeStmt", "CreateDomainStmt"):
            # CREATE TYPE/DOMAIN has no IF NOT EXISTS: only a guard makes it re-runnable.
            name = (
                _rel(node["typevar"])
                if kind == "CompositeTypeStmt"
                else ".".join(_strings(node["typeName" if kind == "CreateEnumStmt" else "domainname"]))
            )
            words = "DOMAIN" if kind == "CreateDomainStmt" else "TYPE"
            yield (
                stmt,
                "create-object-not-idempotent",
                f"CREATE {words} {name} fails when the {what} is re-run (it has no IF NOT EXISTS)",
                f"create it in a DO block that first checks pg_type for {name}",
            )
        elif kind == "DropStmt":
            words = object_words(node["removeType"])
            if words in ("POLICY", "TRIGGER"):
                for obj in node["objects"]:
                    *owner, dropped_name = _strings(obj["List"]["items"])
                    dropped.add((words, dropped_name, owner[-1]))
            if not node.get("missing_ok"):
                words += " CONCURRENTLY" if node.get("concurrent") else ""
                yield (stmt, "drop-without-if-exists", *_drop_without_if_exists(stmt.text, words, fails))
        elif kind == "DropRoleStmt" and not node.get("missing_ok"):
            yield (
                stmt,
                "drop-without-if-exists",
                *_drop_without_if_exists(stmt.text, "ROLE|USER|GROUP", fails),
            )


def _missing_clause(rule: str, words: str, name: str, fails: str, *, replace: bool) -> tuple[str, str, str]:
    """(rule, message, hint) for a CREATE lacking OR REPLACE (`replace`) or IF NOT EXISTS,
    which stand in different places: CREATE OR REPLACE VIEW v, CREATE TABLE IF NOT EXISTS t."""
    if replace:
        return (
            rule,
            f"CREATE {words} {name} without OR REPLACE {fails}",
            f"write CREATE OR REPLACE {words} {name}",
        )
    return (
        rule,
        f"CREATE {words} {name} without IF NOT EXISTS {fails}",
        f"write CREATE {words} IF NOT EXISTS {name}",
    )


def _drop_without_if_exists(text: str, words: str, fails: str) -> tuple[str, str]:
    """Message and hint quoting the DROP as written: its own spelling of names and argument types.

    `words` are the object type's keywords (a regex alternation for roles), after which
    IF EXISTS goes.
    """
    flat = " ".join(text.split())
    quoted = flat if len(flat) <= 100 else flat[:99] + "…"
    pattern = r"\s+".join(words.split(" ")) if "|" not in words else f"(?:{words})"
    head = re.match(rf"DROP\s+{pattern}\s+", flat, re.I)
    hint = (
        f"write {head[0]}IF EXISTS {flat[head.end() :]}"
        if head and len(flat) <= 100
        else f"write IF EXISTS after DROP {words.split('|')[0]}"
    )
    return f"{quoted} without IF EXISTS {fails}", hint


def _alter_table(node: Node, fails: str) -> Iterator[tuple[str, str, str]]:
    words = f"ALTER {object_words(node.get('objtype', 'OBJECT_TABLE'))} {_rel(node['relation'])}"
    for item in node.get("cmds", []):
        cmd = item["AlterTableCmd"]
        if cmd.get("missing_ok"):
            continue
        if cmd["subtype"] == "AT_AddColumn":
            column = cmd["def"]["ColumnDef"]["colname"]
            yield (
                "add-column-not-idempotent",
                f"{words} ADD COLUMN {column} without IF NOT EXISTS {fails}",
                f"write {words} ADD COLUMN IF NOT EXISTS {column}",
            )
        elif cmd["subtype"] in ("AT_DropColumn", "AT_DropConstraint"):
            sub = "COLUMN" if cmd["subtype"] == "AT_DropColumn" else "CONSTRAINT"
            yield (
                "drop-without-if-exists",
                f"{words} DROP {sub} {cmd['name']} without IF EXISTS {fails}",
                f"write {words} DROP {sub} IF EXISTS {cmd['name']}",
            )


def _created(kind: str, node: Node) -> tuple[str, str]:
    if kind == "CreateSchemaStmt":
        if "schemaname" in node:
            return "SCHEMA", str(node["schemaname"])
        role = node["authrole"]  # CREATE SCHEMA AUTHORIZATION role
        return "SCHEMA", "AUTHORIZATION " + str(
            role.get("rolename") or role["roletype"].removeprefix("ROLESPEC_")
        )
    if kind == "CreateSeqStmt":
        return "SEQUENCE", _rel(node["sequence"])
    return "EXTENSION", str(node["extname"])


def _rel(range_var: Node) -> str:
    return ".".join(p for p in (range_var.get("schemaname"), range_var["relname"]) if p)


def _strings(items: list[Node]) -> list[str]:
    return [str(item["String"]["sval"]) for item in items if "String" in item]


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
) -> list[Finding]:
    """squawk's violations as findings, or one squawk-failed finding if squawk misbehaves."""
    findings = []
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
            if (target.what == "rollback" and rule in ROLLBACK_DUTIES) or not timeout_advice_applies(
                rule, target.limits
            ):
                continue
            if key not in lines:
                lines[key] = target.script.text.split("\n")
            finding = _from_squawk(violation, key[0], lines[key], spans.get(key))
            if finding is not None:
                findings.append(finding)
    return findings


def _from_squawk(
    violation: dict[str, Any], file: str, lines: list[str], spans: list[_Span] | None
) -> Finding | None:
    """One squawk violation as a Finding; None when an ignore comment or a duplicate drops it.

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
        if _switched_off(rule, span.suppressed) or (
            span.on_new_table and violation["rule_name"] in LOCK_RULES
        ):
            return None
    return Finding(rule, severity, file, line, message, hint, column)
