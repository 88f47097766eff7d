"""Where the notebook acts, shown before anything else: the one thing a DBA must never
have to guess.

The banner names the server (host:port), the database, the role, sandbox or not, the
server version and whether the session can write, read live from the server. Anything but
the sandbox gets a large red and orange block; the sandbox a quiet green line. It also says
where the target came from: `ORIGINS` holds what `runbook.setup` decided for the databases
it chose (a scratch database it created is not "from --db").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from bilantools import BilanToolsError
from bilantools.commands import Target, TargetLike
from bilantools.notebook import log
from bilantools.notebook.panel import Panel
from bilantools.notebook.render import esc

SANDBOX_STYLE = "background:#e8f5e9;border:1px solid #2e7d32;color:#1b5e20;font-size:12px"
DATABASE_STYLE = "background:#fff3e0;border:4px solid #c62828;color:#b71c1c;font-size:16px"
UNKNOWN_STYLE = "background:#ffebee;border:4px solid #c62828;color:#b71c1c;font-size:16px"
# Where a database came from, when not as its Target says (conninfo -> words); see runbook.setup.
ORIGINS: dict[str, str] = {}
# One round trip: who and where we are, and every reason the session could not write.
FACTS_SQL = """
SELECT current_setting('server_version'), current_user, current_database(),
       current_setting('default_transaction_read_only') = 'on', pg_is_in_recovery(),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       has_schema_privilege('public', 'CREATE')
"""


@dataclass(frozen=True)
class ServerFacts:
    """What the banner reads from the server."""

    version: str
    role: str
    database: str
    read_only_default: bool
    standby: bool
    superuser: bool
    can_create: bool

    @property
    def writable(self) -> str:
        """Whether a change can run, and which fact says so."""
        if self.standby:
            return "READ-ONLY: a standby (pg_is_in_recovery)"
        if self.read_only_default:
            return "READ-ONLY by default (default_transaction_read_only = on)"
        if self.superuser:
            return "read-write (superuser)"
        if not self.can_create:
            return f"no CREATE on schema public for role {self.role} (its privileges)"
        return f"read-write (role {self.role} may CREATE in schema public)"


def origin(target: Target) -> str:
    """Where `target` came from, in words."""
    return ORIGINS.get(target.conninfo, f"from {target.source}")


class TargetBanner(Panel):
    """An HTML banner (see the module); `text` is its plain-text twin, printed by the runbooks."""

    def __init__(self, target: TargetLike = None, migrations: Path | str = "migrations") -> None:
        super().__init__(target, migrations)
        self.html = widgets.HTML()
        self.widget = self.html
        self.text = ""
        self.refresh()

    def refresh(self) -> None:
        """Reconnect and redraw (the facts are read live, which proves the server answers)."""
        self.guard(self._refresh)

    def _refresh(self) -> None:
        try:
            target = self.target
        except BilanToolsError as exc:  # already in the log: Panel tried when it was built
            self._draw(UNKNOWN_STYLE, "⛔ NO TARGET", str(exc), [])
            return
        if target.is_sandbox:
            style, heading = SANDBOX_STYLE, "✅ sandbox"
            note = "local disposable server: changes run without confirmation"
        else:
            style, heading = DATABASE_STYLE, "⚠️ PRODUCTION? not the sandbox"
            note = "every change asks for confirmation and takes a backup first"
        server = f"{target.params.get('host', 'local socket')}:{target.params.get('port', '5432')}"
        try:
            facts = read_facts(target)
        except BilanToolsError as exc:
            log.error(self.log, str(exc))
            self._draw(
                UNKNOWN_STYLE, f"{heading}: UNREACHABLE", f"{target.masked} ({origin(target)})", [str(exc)]
            )
            return
        lines = [
            f"server {server} · database {facts.database} · role {facts.role} · "
            f"PostgreSQL {facts.version} · {facts.writable}",
            f"{target.masked} ({origin(target)}) · migrations: {self.migrations}",
            note,
        ]
        self._draw(style, heading, lines[0], lines[1:])

    def _draw(self, style: str, heading: str, first: str, more: list[str]) -> None:
        small = "".join(f"<br><small>{esc(log.one_line(line))}</small>" for line in more)
        self.html.value = (
            f'<div style="{style};padding:6px 10px;border-radius:4px;font-family:monospace">'
            f"<b>{esc(heading)}</b> · <span>{esc(log.one_line(first))}</span>{small}</div>"
        )
        self.text = "\n".join(log.one_line(line) for line in [f"{heading} · {first}", *more])


def read_facts(target: Target) -> ServerFacts:
    with target.connect("bilantools notebook banner") as conn:
        row = conn.execute(FACTS_SQL).fetchone()
    assert row is not None  # a SELECT without FROM returns its row
    return ServerFacts(*(str(v) if i < 3 else bool(v) for i, v in enumerate(row)))  # type: ignore[arg-type]
