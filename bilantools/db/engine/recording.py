"""The executor that runs nothing: it records the commands the batched and autocommit
executors would send for each unit (built by the same functions), and prints them as a
script a DBA can read and run (`plan --sql`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bilantools.db import history, integrity
from bilantools.db.engine import autocommit, sending
from bilantools.db.engine.results import Action, Outcome, Step
from bilantools.db.engine.session import Session, Unit, in_transaction
from bilantools.source.statements import Statement

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.files import Migration, Script

# Values only a run knows, shown by name where they would be sent.
STARTED_AT = "<the time the run starts it>"
ELAPSED_MS = "the milliseconds its statements took"
# When the target has no tracking objects yet, the proof cannot be written out: it names
# their oids, which exist once the run has created them.
NO_PROOF = (
    "-- the proof that the tracking objects are as expected goes here; it names their oids, "
    "which exist only once they are created"
)


@dataclass
class Recorded:
    """The commands of one unit, in the order a run sends them."""

    migration: Migration
    transactional: bool
    durable: bool
    commands: list[sending.Command | str] = field(default_factory=list)  # str: a comment
    action: Action = "apply"

    @property
    def script(self) -> Script:
        """The file it runs: the migration's, or its rollback's."""
        m = self.migration
        return m.rollback if self.action == "rollback" and m.rollback is not None else m.script


class Recording:
    """Records each unit's commands; the session's guard is None when the tracking
    objects do not exist yet (the proof is then a comment)."""

    def __init__(self, session: Session, create_tracking: bool = False) -> None:
        self.session = session
        self.create_tracking = create_tracking  # the run creates the tracking objects first
        self.units: list[Recorded] = []

    def run(self, batch: list[Unit], action: Action, durable: bool, started: float) -> list[Step]:
        session = self.session
        steps = []
        for index, (m, statements) in enumerate(batch):
            limits = session.limits_for(m, action)
            if in_transaction(m, action):
                last = durable and index == len(batch) - 1
                commands: list[sending.Command | str] = list(
                    sending.in_transaction(session.actor, self._guard(), m, statements, action, limits, last)
                )
                self.units.append(Recorded(m, True, last, self._without_proof(commands), action))
            else:
                self.units.append(Recorded(m, False, True, self._outside(m, statements, action), action))
            outcome: Outcome = "would apply" if action == "apply" else "would roll back"
            steps.append(Step(m.version, m.name, action, outcome, None, len(statements)))
        return steps

    def _outside(
        self, m: Migration, statements: list[Statement], action: Action
    ) -> list[sending.Command | str]:
        """What `autocommit.Autocommit` sends for a `-- transaction: off` unit."""
        session = self.session
        commands: list[sending.Command | str] = []
        settings = autocommit.session_limits(session.limits_for(m, action))
        if settings is not None:
            commands.append(settings)
        if action == "apply" and m.version in session.retrying:
            commands.append("-- before a retry: DROP INDEX CONCURRENTLY of each invalid index it left")
        commands.append(sending.Command("start", "BEGIN"))
        commands.extend(autocommit.started_record(session.actor, m, action, "started", STARTED_AT))
        commands.append(sending.Command("start", "COMMIT"))
        commands.extend(sending.Command("statement", s.text, None, n) for n, s in enumerate(statements))
        commands.extend(sending.Command("reset", query) for query in integrity.RESET_SESSION)
        commands.append(sending.Command("write", "BEGIN"))
        commands.append(f"-- the run sends its measured duration ({ELAPSED_MS}) where this sends NULL")
        commands.extend(
            self._without_proof(list(autocommit.after(session.actor, self._guard(), m, action, None)))
        )
        commands.append(sending.Command("commit", "COMMIT"))
        return commands

    def _guard(self) -> integrity.Guard:
        if self.session.guard is None:
            return integrity.Guard(self.session.actor.run_id, "", {})
        return self.session.guard

    def _without_proof(self, commands: list[sending.Command | str]) -> list[sending.Command | str]:
        if self.session.guard is not None:
            return commands
        return [NO_PROOF if isinstance(c, sending.Command) and c.what == "check" else c for c in commands]

    def sql(self, conn: psycopg.Connection, header: str, durable_every: float) -> str:
        """The recorded units as a script: parameters inlined by psycopg's client-side
        binding (the same quoting as `sql.Literal`), each unit under a comment naming its
        file."""
        from psycopg import ClientCursor

        cursor = ClientCursor(conn)
        lines = [header]
        if self.create_tracking:
            lines += [
                "\n-- the tracking objects (schema_migrations, its functions, the event log), created first",
                "BEGIN;",
                *(
                    statement.rstrip().rstrip(";") + ";"
                    for statement in history.creation_sql(self.session.actor.tracking)
                ),
                "COMMIT;",
            ]
        for unit in self.units:
            script = unit.script
            lines.append(f"\n-- {script.path.name} (checksum {script.checksum[:12]})")
            if not unit.transactional:
                lines.append("-- transaction: off: each statement commits on its own")
            elif not unit.durable:
                lines.append(
                    "-- its commit does not wait for the disk (synchronous_commit off): the run's next "
                    f"commit that waits (at most {durable_every:g} s later, and its last) makes it durable"
                )
            for c in unit.commands:
                if isinstance(c, str):
                    lines.append(c)
                elif c.params:
                    lines.append(_ended(cursor.mogrify(c.query, c.params)))
                else:
                    lines.append(_ended(c.query))
        return "\n".join(lines) + "\n"


def _ended(text: str) -> str:
    """The statement with its semicolon, on a line of its own after a line comment."""
    last = text.rstrip().splitlines()[-1] if text.strip() else ""
    return f"{text.rstrip()}\n;" if "--" in last else f"{text.rstrip()};"
