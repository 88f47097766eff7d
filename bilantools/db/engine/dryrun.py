"""The dry run: each unit in a savepoint of one transaction that is rolled back at the
end, so the run's errors show and nothing is kept."""

from __future__ import annotations

from bilantools.db import integrity
from bilantools.db.diagnostics import error_line, server_message
from bilantools.db.engine import sending
from bilantools.db.engine.limits import set_limits
from bilantools.db.engine.results import Action, Step
from bilantools.db.engine.session import Session, Unit, ms
from bilantools.errors import MigrationFailed
from bilantools.source.files import Migration
from bilantools.source.statements import Statement


class DryRun:
    """Runs units inside the dry run's transaction (the caller opens and rolls it back);
    a unit that fails is a 'failed' step, and the units after it are not run."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def run(self, batch: list[Unit], action: Action, durable: bool, started: float) -> list[Step]:
        steps = []
        for m, statements in batch:
            steps.append(self._step(m, statements, action, started))
            if steps[-1].outcome == "failed":
                break
        return steps

    def _step(self, m: Migration, statements: list[Statement], action: Action, started: float) -> Step:
        """One unit inside a savepoint of the dry run's transaction."""
        import psycopg

        session, conn = self.session, self.session.conn
        script = m.script if action == "apply" else m.rollback
        assert script is not None
        done = 0
        stage = ""
        try:
            with conn.transaction():
                set_limits(conn, session.limits_for(m, action))
                for done, stmt in enumerate(statements):  # noqa: B007
                    conn.execute(stmt.text)
                stage = "reset"
                integrity.reset_session(conn)
                stage = "write"
                elapsed = ms(started) if action == "apply" else None
                sending.send(conn, sending.tracking_write(session.actor, m, action, elapsed))
                for write in sending.peer_writes(session.actor, m, action):
                    sending.send(conn, write)
                stage = "check"
                proof = session.the_guard().proof(m.version, m.checksum, action, by_content=True)
                sending.send(conn, sending.Command("check", *proof))
        except psycopg.Error as exc:
            stmt = statements[done]
            detail = f"{script.path.name}:{error_line(stmt, exc)}: {server_message(exc)}"
            # its statements ran: did they break the reset or the tracking write, or change the history?
            if stage:

                def again() -> None:
                    sending.send(conn, sending.tracking_write(session.actor, m, action))

                blamed = integrity.blame(conn, m, action, exc, stage, again)
                what = f"{script.path.name}: its tracking {stage} failed: {server_message(exc)}"
                detail = blamed.message if isinstance(blamed, MigrationFailed) else what
            return Step(m.version, m.name, action, "failed", ms(started), done, detail=detail)
        if action == "apply":
            return Step(m.version, m.name, "apply", "would apply", ms(started), len(statements))
        return Step(m.version, m.name, "rollback", "would roll back", ms(started), len(statements))
