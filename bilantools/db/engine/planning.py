"""Status and plans as pure functions of the history rows and the migration set: which
state each migration is in, what `apply` and `rollback` would run, and the range a run
is limited to (`to`, `step`). Nothing here touches a connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bilantools.db.engine.results import MigrationStatus, State, Status
from bilantools.db.history import HistoryRow
from bilantools.errors import InputError, RefusedError, option
from bilantools.source.files import Migration, MigrationSet
from bilantools.source.findings import Finding

BOTH_RANGES = f"{option('to')} and {option('step')} cannot be used together; pass one of them"


# What status and validate add to a migration whose last apply timed out on a lock.
RETRY_WHEN_RELEASED = "retry when it is released"


def status(
    target: str,
    migrations: MigrationSet,
    tracked: bool,
    rows: Sequence[HistoryRow],
    waits: Mapping[str, str] | None = None,
) -> Status:
    """Each migration's state from its history row (and the rows without a file). `waits`:
    the versions whose last apply timed out waiting for a lock -> what it waited for, the
    `error` of a pending one (nothing was wrong with its file)."""
    waited = {migrations.key_of(v) or v: detail for v, detail in (waits or {}).items()}
    by_key = {migrations.key_of(r.version) or r.version: r for r in rows}
    result: list[MigrationStatus] = []
    for m in migrations:
        row = by_key.pop(m.key, None)
        file = str(m.path)
        if row is None:
            note = waited.get(m.key)
            error = f"{note}: {RETRY_WHEN_RELEASED}" if note else None
            result.append(
                MigrationStatus(m.version, m.name, "pending", error=error, file=file, repeatable=m.repeatable)
            )
            continue
        if not row.success:
            state: State = "failed"
        elif row.checksum and row.checksum != m.checksum:
            state = "outdated" if m.repeatable else "changed"
        else:
            state = "applied"
        result.append(
            MigrationStatus(
                m.version,
                m.name,
                state,
                row.applied_at,
                row.execution_time_ms,
                row.applied_by,
                row.error_message,
                row.partial,
                file,
                m.repeatable,
            )
        )
    for row in by_key.values():
        result.append(
            MigrationStatus(
                row.version,
                row.description or "",
                "missing-file",
                row.applied_at,
                row.execution_time_ms,
                row.applied_by,
                row.error_message,
                row.partial,
            )
        )
    orders = {m.version: m.order for m in migrations}
    result.sort(
        key=lambda s: (orders.get(s.version) or migrations.order_of(s.version) or (1 << 62,), s.version)
    )
    return Status(target, result, tracked, migrations.layout)


def plan(
    current: Status, migrations: MigrationSet, to: str | None, step: int | None
) -> tuple[list[Migration], set[str]]:
    """(the migrations `apply` would run in order, the failed ones among them it retries);
    refuses when an applied file changed. `migrations` is valid (`require_valid`)."""
    states = {s.version: s for s in current.migrations}
    changed = [v for v, s in states.items() if s.state == "changed"]
    if changed:
        raise RefusedError(
            f"migration(s) {', '.join(changed)} changed since they were applied (checksum "
            "differs): restore the file(s), or run 'bilantools repair' if the edit is intentional"
        )
    todo = [m for m in migrations if states[m.version].state in ("pending", "failed", "outdated")]
    retrying = {v for v, s in states.items() if s.state == "failed"}
    return limit(todo, migrations, to, step, forward=True), retrying


def rollback_plan(
    current: Status, migrations: MigrationSet, to: str | None, step: int | None
) -> list[Migration]:
    """Applied migrations to roll back, newest first (repeatable ones never: they have no
    undo); refuses a range with no script. `migrations` is valid (`require_valid`)."""
    states = {s.version: s for s in current.migrations}
    done = [
        m
        for m in reversed(migrations.migrations)
        if states[m.version].state in ("applied", "changed") and not m.repeatable
    ]
    if to is not None and step is not None:
        raise InputError(BOTH_RANGES)
    if to is not None and migrations.key_of(to) == "0":
        chosen = done
    else:
        chosen = limit(done, migrations, to, 1 if to is None and step is None else step, forward=False)
    lowest = min((m.order for m in chosen), default=None)
    stranded = [
        s.version
        for s in states.values()
        if s.state == "missing-file"
        and lowest is not None
        and (migrations.order_of(s.version) or ()) > lowest
    ]
    if stranded:
        raise RefusedError(
            f"migration(s) {', '.join(stranded)} are applied but their files are missing: "
            "restore them before rolling back past them"
        )
    without = [m for m in chosen if m.rollback is None]
    if without:
        raise RefusedError(
            f"no rollback script for {', '.join(m.label for m in without)}: "
            f"{without[0].rollback_hint} (nothing was rolled back)"
        )
    return chosen


def limit(
    candidates: list[Migration], migrations: MigrationSet, to: str | None, step: int | None, forward: bool
) -> list[Migration]:
    """The candidates within the range: the first `step`, or those up to (forward) or
    above (backward) version `to`."""
    if to is not None and step is not None:
        raise InputError(BOTH_RANGES)
    if step is not None:
        if step < 1:
            raise InputError(f"{option('step', step)}: pass a number of migrations of 1 or more")
        return candidates[:step]
    if to is None:
        return candidates
    position = {m.version: i for i, m in enumerate(migrations.migrations)}
    end = position[migrations.resolve(to).version]
    if forward:
        return [m for m in candidates if position[m.version] <= end]
    return [m for m in candidates if position[m.version] > end]


def history_findings(current: Status, migrations: MigrationSet) -> list[Finding]:
    """Directory problems plus history problems: edited, vanished and failed migrations."""
    findings = list(migrations.findings)
    for s in current.migrations:
        file = s.file or str(migrations.directory)
        if s.state == "changed":
            findings.append(
                Finding(
                    "checksum-mismatch",
                    "error",
                    file,
                    None,
                    f"migration {s.version} was edited after it was applied (checksum differs)",
                    "restore the file, or run 'bilantools repair' if the edit is intentional",
                )
            )
        elif s.state == "missing-file":
            findings.append(
                Finding(
                    "missing-file",
                    "error",
                    file,
                    None,
                    f"migration {s.version} ({s.name}) is recorded in the database but has no file",
                    "restore the file from version control",
                )
            )
        elif s.state == "pending" and s.error:
            findings.append(
                Finding(
                    "lock-timeout",
                    "info",
                    file,
                    None,
                    f"migration {s.version} {s.error.removesuffix(': ' + RETRY_WHEN_RELEASED)}",
                    f"{RETRY_WHEN_RELEASED}: run 'bilantools apply' again (nothing is wrong with the file)",
                )
            )
        elif s.state == "failed":
            findings.append(
                Finding(
                    "failed-migration",
                    "error",
                    file,
                    None,
                    f"migration {s.version} failed{' half-way' if s.partial else ''}: {s.error}",
                    "fix the file and run 'bilantools apply', or 'bilantools repair' to clear it",
                )
            )
    return findings
