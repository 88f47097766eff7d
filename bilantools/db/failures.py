"""How a run that stopped says so: interrupted, connection lost, or the engine's own
statement (BEGIN, the tracking write, COMMIT) failing around a migration's.

Each becomes one line that names the migration, the file:line and the statement, what
committed and what is unknown, and the fix. Privileges are blamed only for a 42501 on
the connected role: when a migration switched role or search_path, or touched the
tracking objects, that statement is named as the cause instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.db.diagnostics import excerpt
from bilantools.errors import ConnectionLostError, MigrationFailed, RefusedError, RunInterrupted
from bilantools.source.statements import Statement

if TYPE_CHECKING:
    import psycopg

    from bilantools.db.history import Tracking
    from bilantools.source.files import Migration

# What in a migration breaks the engine's tracking write that follows it in the same
# transaction: the tracking objects touched, the role or the search_path changed.
_CAUSES = (
    (
        re.compile(
            r"\b(schema_migrations|schema_migration_events|record_migration|record_migration_failure"
            r"|migration_applied|get_migration_status)\b",
            re.I,
        ),
        "touches the engine's tracking objects, which a migration must not change",
    ),
    (
        re.compile(
            r"^\s*SET\s+(SESSION\s+|LOCAL\s+)?(ROLE|SESSION\s+AUTHORIZATION)\b"
            r"|\bset_config\s*\(\s*'(role|session_authorization)'",
            re.I,
        ),
        "switches to a role that may not write the history: switch back before the end of the file "
        "(RESET ROLE, RESET SESSION AUTHORIZATION)",
    ),
    (
        re.compile(r"^\s*SET\s+(SESSION\s+|LOCAL\s+)?search_path\b|\bset_config\s*\(\s*'search_path'", re.I),
        "changes search_path, which the engine's tracking statements rely on: qualify names with their "
        "schema instead, or restore it before the end of the file (RESET search_path)",
    ),
)
ROLE_SWITCH = _CAUSES[1][0]


def cause(statements: Sequence[Statement]) -> tuple[Statement, str] | None:
    """The statement of a migration that most likely broke the engine's tracking write
    after it, with what it does; None when no statement does any of these."""
    for pattern, what in _CAUSES:
        found = [s for s in statements if pattern.search(s.text)]
        if found:
            return found[-1], what
    return None


def role_switch(statements: Sequence[Statement], before: int) -> Statement | None:
    """The last statement before index `before` that switches the role."""
    found = [s for s in statements[:before] if ROLE_SWITCH.search(s.text)]
    return found[-1] if found else None


def at(script: Path, stmt: Statement) -> str:
    """'file.sql:12 (statement: ...)'."""
    return f"{script.name}:{stmt.line} (statement: {excerpt(stmt.text)})"


def every(total: int) -> str:
    """'its one statement' or 'all N of its statements'."""
    return "its one statement" if total == 1 else f"all {total} of its statements"


def span(labels: Sequence[str]) -> str:
    """Consecutive migrations of a run, named: one, or the first to the last."""
    if len(labels) == 1:
        return labels[0]
    return f"{labels[0]} to {labels[-1]} ({len(labels)} migrations)"


def following(labels: Sequence[str]) -> str:
    """'X' or 'X and the N after it'."""
    more = len(labels) - 1
    return labels[0] + (f" and the {more} after it" if more else "")


@dataclass(frozen=True)
class Place:
    """The statement of a migration where a run stopped: at it, before it or after it."""

    label: str
    version: str
    script: Path
    statement: Statement
    when: str = "at"

    def describe(self) -> str:
        return f"{self.when} {at(self.script, self.statement)}"


class Interruption(Exception):
    """Ctrl-C stopped the run at a known point; raised inside the runner, which makes it a
    RunInterrupted once it knows everything that committed. `place` is None between
    migrations; `recorded` when the migration (outside a transaction) was recorded as
    failed rather than left to run again."""

    def __init__(self, place: Place | None = None, consequence: str = "", recorded: bool = False) -> None:
        super().__init__("interrupted")
        self.place = place
        self.consequence = consequence
        self.recorded = recorded
        self.partial = False


def interruption(
    m: Migration,
    action: str,
    statements: Sequence[Statement],
    index: int | None,
    what: str,
    exc: BaseException,
) -> Interruption:
    """Where Ctrl-C stopped a transactional migration: the statement it cancelled, the one
    it stopped before (`Halted`), or the engine's statements around them."""
    script = m.script if action == "apply" else m.rollback
    assert script is not None
    if what == "start":  # nothing of it ran
        return Interruption()
    ran = not isinstance(exc, Halted)
    if index is None:  # the tracking change, its check or COMMIT
        after = Place(m.label, m.version, script.path, statements[-1], "after")
        return Interruption(after, cancelled(m.label, action))
    place = Place(m.label, m.version, script.path, statements[index], "at" if ran else "before")
    return Interruption(place, cancelled(m.label, action, ran))


def interrupted(
    stop: Interruption, action: str, committed: Sequence[str], left: Sequence[str]
) -> RunInterrupted:
    """The line of a run stopped by Ctrl-C: where, what became of the migration it was
    running, what had committed (named) and what was not run."""
    apply = action == "apply"
    which = "migration " if apply else "the rollback of "
    if stop.place is None:
        head = f"before {which}{left[0]} started" if left else "after the last migration"
    else:
        head = f"during {which}{stop.place.label} {stop.place.describe()}: {stop.consequence}"
    verb = "committed" if apply else "rolled back"
    done = f"{verb} before the interrupt: {', '.join(committed)}" if committed else f"nothing was {verb}"
    rest = f"; not {'applied' if apply else 'rolled back'}: {following(left)}" if left else ""
    place = stop.place
    return RunInterrupted(
        f"interrupted (Ctrl-C) {head}; {done}{rest}; run {action} again to continue",
        version=place.version if place else None,
        file=str(place.script) if place else None,
        line=place.statement.line if place else None,
        partial=stop.partial,
    )


def cancelled(label: str, action: str, ran: bool = False) -> str:
    """What became of a transactional migration that Ctrl-C stopped."""
    first = "the statement was cancelled and " if ran else ""
    if action == "apply":
        return f"{first}{label} rolled back, nothing is recorded for it"
    return f"{first}the rollback of {label} undone, it stays applied"


def cancelled_outside(label: str, done: int, total: int, ran: bool) -> str:
    """The same for a `-- transaction: off` migration, whose statements commit one by one."""
    first = "the statement was cancelled; " if ran else ""
    if done:
        return (
            f"{first}{label} runs outside a transaction and {done} of its {total} statements had "
            "committed, so it is recorded as failed half-way: make it safe to re-run (IF NOT EXISTS) or "
            "finish it by hand"
        )
    return f"{first}none of the statements of {label} had committed; it is recorded as failed"


def outside(label: str, total: int, done: int | None = None, running: str = "") -> str:
    """What is known of a `-- transaction: off` migration when the connection was lost:
    before its statements ran (`done` None), after `done` of them, or after all of them."""
    if done is None:
        return f"{label} runs outside a transaction and none of its statements had run"
    if done == total:
        return (
            f"{label} runs outside a transaction: {every(total)} had committed, and whether "
            "its success was recorded is unknown (if not, it shows as failed half-way)"
        )
    return (
        f"{label} runs outside a transaction: {done} of its {total} statements had committed, whether "
        f"{running} did is unknown, and it is recorded as started and not finished"
    )


def outside_rollback(label: str, total: int, done: int | None = None, running: str = "") -> str:
    """The same for a `-- transaction: off` rollback script: the migration stays recorded
    as applied until the history change after its last statement."""
    head = f"the rollback script of {label} runs outside a transaction"
    if done is None:
        return f"{head} and none of its statements had run; {label} is still recorded as applied"
    if done == total:
        return (
            f"{head}: {every(total)} had committed, and whether {label} was removed from the history is "
            "unknown (if not, it still shows as applied)"
        )
    return (
        f"{head}: {done} of its {total} statements had committed, whether {running} did is unknown, and "
        f"{label} is still recorded as applied"
    )


def cancelled_rollback_outside(label: str, done: int, total: int, ran: bool) -> str:
    """What became of a `-- transaction: off` rollback that Ctrl-C stopped."""
    first = "the statement was cancelled; " if ran else ""
    return (
        f"{first}the rollback script of {label} runs outside a transaction and {done} of its {total} "
        f"statements had committed; {label} stays applied: make the script safe to re-run (IF EXISTS) "
        "or finish it by hand"
    )


@dataclass
class Command:
    """One command of a pipeline: a migration's statement (its index) or the engine's own
    ('start': BEGIN and the limits; 'tracking'; 'commit')."""

    unit: int
    statement: int | None
    what: str
    cursor: psycopg.Cursor[Any] | None = None


class Halted(Exception):
    """Ctrl-C was received: the pipeline stops sending before this command."""

    def __init__(self, unit: int, statement: int | None, what: str) -> None:
        super().__init__("interrupted")
        self.unit, self.statement, self.what = unit, statement, what


class Commands:
    """The commands of one pipeline as handed to psycopg, in order. After an error the
    first without a result is where the server stopped (psycopg sets no result on the
    failed command nor on those the server skipped after it)."""

    def __init__(self, interrupted: Callable[[], bool]) -> None:
        self.sent: list[Command] = []
        self.interrupted = interrupted

    def add(
        self, unit: int, statement: int | None, what: str, execute: Callable[[], psycopg.Cursor[Any]]
    ) -> psycopg.Cursor[Any]:
        if self.interrupted():
            raise Halted(unit, statement, what)
        command = Command(unit, statement, what)
        self.sent.append(command)  # before sending: a command may fail on its way out
        command.cursor = execute()
        return command.cursor

    def stopped(self, exc: BaseException, units: int) -> tuple[int, int | None, str]:
        """(unit, statement, what) of the command where the batch stopped; `units` when
        every command had its result (the pipeline's end failed)."""
        for c in self.sent:
            if c.cursor is None or c.cursor.pgresult is None:
                return c.unit, c.statement, c.what
        if isinstance(exc, Halted):
            return exc.unit, exc.statement, exc.what
        return units, None, "end"

    def committing(self) -> int:
        """How many units (from the batch's first) had their COMMIT handed to psycopg: any
        of them may have committed, whatever results came back; the others cannot have."""
        return max((c.unit + 1 for c in self.sent if c.what == "commit"), default=0)


class LostConnection(Exception):
    """The server went away during a batch; raised inside the runner, which knows the
    migrations before the batch whose commits were not yet known to be on disk.

    `sent` of the batch's migrations (from its first) had their COMMIT handed to the
    server, so any of them may have committed; the others cannot have. A migration
    outside a transaction is described by `outside` instead; `flushed` when its
    synchronous 'started' record made every earlier commit durable."""

    def __init__(self, exc: BaseException, during: str, sent: int, outside: str = "", flushed: bool = False):
        super().__init__(str(exc))
        self.exc = exc
        self.during = during
        self.sent = sent
        self.outside = outside
        self.flushed = flushed


def lost(
    target: str, action: str, stop: LostConnection, unknown: Sequence[str], after: Sequence[str]
) -> ConnectionLostError:
    """The server went away mid-run: say what is known, and nothing that is not.

    `unknown` (consecutive, in run order) may or may not have committed: their COMMIT was
    sent but not known to be on disk; those `after` them cannot have committed."""
    which = "" if action == "apply" else "the rollback of "
    known = [stop.outside or "each migration commits together with its tracking row, so none is half-done"]
    if unknown:
        known.append(f"whether {which}{span(unknown)} committed is unknown")
    else:
        reported = "migration reported applied" if action == "apply" else "rollback reported"
        known.append(f"every {reported} is committed")
    if after:
        known.append(f"{which}{following(after)} did not commit")
    return ConnectionLostError(
        f"lost the connection to {target} during {stop.during} ({_reason(stop.exc)}); {'; '.join(known)}: "
        f"once the server is back, 'bilantools status' shows what is applied; then run {action} again"
    )


def lost_before(target: str, action: str, exc: BaseException) -> ConnectionLostError:
    """The server went away before a run's first migration was sent."""
    return ConnectionLostError(
        f"lost the connection to {target} during the {action}, before its first migration ({_reason(exc)}); "
        f"none of the migrations of this run committed: once the server is back, run {action} again"
    )


def after_last(
    m: Migration,
    action: str,
    statements: Sequence[Statement],
    what: str,
    reason: str,
    record: Callable[[str], str],
) -> MigrationFailed:
    """The engine's statement after a migration's last failed: its tracking write (or the
    check of it), COMMIT, or the success record of a `transaction: off` one. Names the
    statement of the migration that most likely caused it (else its last), records the
    failure of an applied migration with `record` (which returns a note if that failed)."""
    script = m.script if action == "apply" else m.rollback
    assert script is not None
    found = None if what == "commit" else cause(statements)
    stmt, why = found if found else (statements[-1], "")
    where = at(script.path, stmt)
    blame = f"{where} {why}" if why else f"its last statement: {where}"
    step = "at its COMMIT" if what == "commit" else "when the engine recorded it"
    note = ""
    if what == "success":  # outside a transaction: its statements had committed
        consequence = (
            f"{every(len(statements))} had committed (it runs outside a transaction) and it stays recorded "
            "as started and not finished: make the file safe to re-run, then run apply again"
        )
    elif what == "forget":  # a `transaction: off` rollback: its statements had committed
        consequence = (
            f"{every(len(statements))} had committed (it runs outside a transaction) and {m.label} stays "
            "recorded as applied: make the rollback script safe to re-run (IF EXISTS), then run rollback "
            "again"
        )
    elif action == "apply":
        consequence = (
            "its changes were rolled back and the failure recorded: fix the file and run apply again"
        )
        note = record(f"{reason} {step}; {blame}")
    else:
        consequence = (
            "its changes were rolled back and the migration stays applied: fix the rollback script and run "
            "rollback again"
        )
    which = "migration " if action == "apply" else "rollback of "
    return MigrationFailed(
        f"{which}{m.label} failed after its last statement, {step}: {reason}; {blame}; {consequence}{note}",
        version=m.version,
        file=str(script.path),
        line=stmt.line,
        statement=stmt.text,
        server_message=reason,
        partial=what in ("success", "forget"),
    )


def history_refused(
    label: str, action: str, role: str, reason: str, ran: bool, tracking: Tracking
) -> RefusedError:
    """The connected role may not write the history: a grant to make, nothing recorded."""
    which = "migration " if action == "apply" else "the rollback of "
    head = f"{which}{label} ran, but" if ran else f"{which}{label} cannot start:"
    return RefusedError(
        f"{head} the connected role {role} lacks the privileges to record it in the history: {reason}; "
        f"nothing was changed or recorded: GRANT INSERT, UPDATE, DELETE ON {tracking.label} and INSERT ON "
        f"{tracking.schema}.schema_migration_events TO {role}, or connect as their owner, then run "
        f"{action} again"
    )


def _reason(exc: BaseException) -> str:
    """libpq's message on one line, without its speculation about the server."""
    return " ".join(str(exc).split()).split(" This probably means")[0] or type(exc).__name__


def connected_role_may_write_history(conn: psycopg.Connection, tracking: Tracking) -> bool:
    """Whether the connected role may do the tracking write. Asked of that role by name:
    the session may still run as one a migration switched to (outside a transaction a
    SET SESSION AUTHORIZATION outlives the migration)."""
    role = conn.info.user
    row = conn.execute(
        "SELECT coalesce(has_table_privilege(%s, to_regclass(%s), 'INSERT, UPDATE, DELETE'),"
        " true) AND coalesce(has_table_privilege(%s, to_regclass(%s), 'INSERT'), true)"
        " AND coalesce(has_function_privilege(%s, to_regprocedure(%s), 'EXECUTE'), true)",
        (
            role,
            tracking.name("schema_migrations"),
            role,
            tracking.name("schema_migration_events"),
            role,
            tracking.functions[1],
        ),
    ).fetchone()
    return bool(row and row[0])
