"""`check`: every problem of a migrations directory, found without a database.

Merges, in one report sorted by file and line: the directory's own problems (names,
encodings, versions, headers, rollbacks), syntax errors from the PostgreSQL parser,
statements that cannot run as the header says or that break what the engine relies on
(its tracking objects, the session, the client connection), the dependency graph's findings
(forward and unresolved references, ordering, rollbacks that do not undo), and the lint
rules (idempotency; squawk's lock and rewrite rules). Rules switched off in
``[tool.bilantools] disable`` or by a ``-- bilantools: ignore`` comment are dropped.
A report is read the way `bilantools check` prints it with `CheckReport.only` (a minimum
severity, some rules, rules left out) and `by_rule` (errors first); `apply_errors` is
what `apply` refuses to run with, every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bilantools.errors import InputError, option
from bilantools.source.config import CheckConfig, load_config, suppressed_rules
from bilantools.source.engine_rules import TrackingObjects, engine_findings
from bilantools.source.files import Migration, MigrationSet
from bilantools.source.findings import Finding, Severity
from bilantools.source.graph import Analysis, analyse
from bilantools.source.layouts.native import discover
from bilantools.source.parsed import parse_script
from bilantools.source.statements import SqlSyntaxError, Statement, runnable_findings

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class CheckReport:
    migrations: MigrationSet
    analysis: Analysis
    findings: list[Finding]
    # squawk's advice the engine follows itself (the timeouts it sets), as notes: not findings
    engine_safe: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def as_dict(self) -> dict[str, Any]:
        """The findings; "engine_safe" too when the engine follows some of squawk's advice."""
        shown: dict[str, Any] = {"findings": [f.as_dict() for f in self.findings]}
        if self.engine_safe:
            shown["engine_safe"] = [f.as_dict() for f in self.engine_safe]
        return shown

    def only(
        self,
        severity: str = "info",
        rules: frozenset[str] = frozenset(),
        ignore: frozenset[str] = frozenset(),
    ) -> CheckReport:
        """The findings of `severity` or worse, of `rules` only (all when empty), without
        `ignore`; a rule is named by its id, or "squawk" for every squawk rule."""
        if severity not in SEVERITY_ORDER:
            raise InputError(
                f"{option('severity', severity)} is not a severity; choose error, warning or info"
            )
        kept = [
            f
            for f in self.findings
            if SEVERITY_ORDER[f.severity] <= SEVERITY_ORDER[severity]
            and (not rules or _named(f.rule, rules))
            and not _named(f.rule, ignore)
        ]
        return replace(self, findings=kept)

    def by_rule(self) -> list[tuple[Severity, str, list[Finding]]]:
        """(severity, rule, findings) groups, what matters most first: errors, then warnings,
        then notes; within a severity bilantools' own rules (what fails or is lost) before
        squawk's advice, and rare rules before the ones repeated in every file."""
        groups: dict[tuple[Severity, str], list[Finding]] = {}
        for f in self.findings:
            groups.setdefault((f.severity, f.rule), []).append(f)
        order = sorted(
            groups,
            key=lambda k: (SEVERITY_ORDER[k[0]], k[1].startswith("squawk:"), len(groups[k]), k[1]),
        )
        return [(severity, rule, groups[severity, rule]) for severity, rule in order]

    def unread(self) -> list[Finding]:
        """Why files are missing from the analysis (left out when the directory was read) or
        read in part (a migration with a syntax error: only what its other statements
        create is known)."""
        broken = {str(e.script.path) for e in self.analysis.effects.values() if e.broken}
        return [
            f for f in self.findings if f.leaves_file_out or (f.rule == "syntax-error" and f.file in broken)
        ]

    def counts(self) -> dict[Severity, int]:
        counted: dict[Severity, int] = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            counted[f.severity] += 1
        return counted


def _named(rule: str, names: frozenset[str]) -> bool:
    return rule in names or (rule.startswith("squawk:") and "squawk" in names)


def check(
    directory: Path | str,
    provided: frozenset[str] = frozenset(),
    config: CheckConfig | None = None,
    lint_rules: bool = True,
    rollbacks: bool = True,
    found: MigrationSet | None = None,
    tracking: TrackingObjects | None = None,
) -> CheckReport:
    """Analyse `directory`; `provided` adds objects that exist outside the migrations, and
    `tracking` the engine's own (``db.history.tracking()``), which migrations must leave alone.

    `apply` passes ``lint_rules=False, rollbacks=False``: it needs only what would make
    the forward scripts fail, and it runs before every apply (with the `found` set it has
    already read).
    """
    found = found or discover(directory)
    config = config or load_config(Path(directory).absolute())
    findings = list(found.findings)
    findings.extend(script_findings(found, rollbacks, tracking))
    engine = tracking.provided if tracking is not None else frozenset()
    analysis = analyse(found, provided | config.provided | engine, rollbacks)
    findings.extend(analysis.findings)
    engine_safe: list[Finding] = []
    if lint_rules:
        from bilantools.source.lint import lint

        findings.extend(lint(found, config, engine_safe))
    kept = _apply_switches(findings, found, config)
    kept.sort(key=lambda f: (f.file, f.line or 0, SEVERITY_ORDER[f.severity], f.rule, f.message))
    notes = sorted(_apply_switches(engine_safe, found, config), key=lambda f: (f.file, f.line or 0, f.rule))
    return CheckReport(found, analysis, kept, notes)


# Errors apply lets through with force=True: the server would still run every statement.
FORCIBLE = frozenset({"forward-reference"})


def apply_errors(
    found: MigrationSet, config: CheckConfig, tracking: TrackingObjects, force: bool = False
) -> list[Finding]:
    """Every error for which `apply` refuses to run, by file and line: the directory's, and
    what the server or the engine cannot run; ordering errors too unless `force`. Only
    the forward scripts count (a rollback is checked when it is about to run)."""
    report = check(
        found.directory, config=config, lint_rules=False, rollbacks=False, found=found, tracking=tracking
    )
    return [f for f in report.errors if not (force and f.rule in FORCIBLE)]


def script_findings(
    found: MigrationSet, rollbacks: bool = True, tracking: TrackingObjects | None = None
) -> list[Finding]:
    """Syntax errors, statements that cannot run the way their file says, and statements
    that break what the engine relies on (see `engine_rules`)."""
    findings = []
    for m in found:
        for script, transactional in ((m.script, m.transactional), (m.rollback, m.rollback_transactional)):
            if script is None or (script is m.rollback and not rollbacks):
                continue
            try:
                parsed = parse_script(script)
            except SqlSyntaxError as exc:
                findings.append(exc.finding())
                continue
            statements = [Statement(p.text, p.line) for p in parsed]
            findings.extend(runnable_findings(script, statements, transactional))
            findings.extend(engine_findings(script, parsed, transactional, tracking))
    return findings


def rollback_errors(
    found: MigrationSet, todo: list[Migration], tracking: TrackingObjects, config: CheckConfig
) -> list[Finding]:
    """The errors `rollback` refuses before it runs: statements of the rollback scripts in
    `todo` that break what the engine relies on (syntax errors and statements that cannot
    run as the header says are refused when the scripts are split)."""
    findings = []
    for m in todo:
        if m.rollback is not None:
            parsed = parse_script(m.rollback)
            findings.extend(engine_findings(m.rollback, parsed, m.rollback_transactional, tracking))
    return [f for f in _apply_switches(findings, found, config) if f.severity == "error"]


def _apply_switches(findings: list[Finding], found: MigrationSet, config: CheckConfig) -> list[Finding]:
    """`findings` without the rules switched off, in the configuration or by an ignore
    comment, and without duplicates.

    A finding names only its file and line: the text its ignore comments are read in is the
    union of the file's scripts (a dbmate file's up and down sections), each line taken
    from the script it belongs to.
    """
    texts: dict[str, str] = {}
    history: set[str] = set()  # files at or before squawk-after: no lock/rewrite advice
    after = config.squawk_order(found)
    for m in found:
        for script in (m.script, m.rollback):
            if script is not None:
                file = str(script.path)
                texts[file] = _union(texts[file], script.text) if file in texts else script.text
        if after is not None and m.order <= after:
            history.update(str(s.path) for s in (m.script, m.rollback) if s is not None)
    kept = []
    seen = set()
    for f in findings:
        squawk = f.rule.startswith("squawk:")
        if f.rule in config.disabled or (squawk and ("squawk" in config.disabled or f.file in history)):
            continue
        text = texts.get(f.file)
        if f.line and text is not None and f.rule in suppressed_rules(text, f.line):
            continue
        key = (f.rule, f.file, f.line, f.message)
        if key not in seen:
            seen.add(key)
            kept.append(f)
    return kept


def _union(first: str, second: str) -> str:
    """Two scripts of one file (each blank outside its own lines) as one text."""
    return "\n".join(
        a if a.strip() else b for a, b in zip_longest(first.split("\n"), second.split("\n"), fillvalue="")
    )
