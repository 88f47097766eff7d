"""`bilantools adopt`: take over the history of the tool that migrated a database so far.

What the peer tool's own table says is applied (`bilantools.db.peers`) is recorded in
our history without running anything, as `baseline` does, each with a 'baseline' event
naming where it came from; then the catalog is asked what it confirms: for each of those
migrations, the share of the objects it leaves behind that the database has (`detect`).
Adopting again records nothing new and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.db.peers import PeerHistory, pair, peer
from bilantools.errors import InputError, option

if TYPE_CHECKING:
    from bilantools.db.runner import Runner
    from bilantools.db.verify import Detection


@dataclass
class Adoption:
    """What adopt recorded (or, in a dry run, would record) and what the catalog confirms."""

    target: str
    tool: str
    history: str  # the peer's table, as read
    tracking: str  # ours, where it was recorded
    dry_run: bool
    recorded: list[str] = field(default_factory=list)  # versions recorded by this run
    already: list[str] = field(default_factory=list)  # in our history before it
    no_file: list[str] = field(default_factory=list)  # the peer's rows with no migration file
    never: list[str] = field(default_factory=list)  # files the peer never applied
    confirmed: list[dict[str, Any]] = field(default_factory=list)  # per adopted migration: detect's share
    run_id: str | None = None

    @property
    def unconfirmed(self) -> list[str]:
        """Adopted migrations of which the catalog lacks some objects."""
        return [c["version"] for c in self.confirmed if c["share"] is not None and c["share"] < 1]

    @property
    def exit_code(self) -> int:
        """0: adopted and confirmed; 1: adopted, but the catalog does not confirm everything."""
        return 1 if self.unconfirmed else 0

    def as_dict(self) -> dict[str, Any]:
        shown = (
            "target",
            "tool",
            "history",
            "tracking",
            "dry_run",
            "recorded",
            "already",
            "no_file",
            "never",
        )
        return {
            **{name: getattr(self, name) for name in shown},
            "migrations": self.confirmed,
            "unconfirmed": self.unconfirmed,
            "run_id": self.run_id,
        }


def tool_of(directory: Path, layout: str, source: str | None) -> str:
    """The tool whose history to read: `source`, else the one of the project's layout."""
    tool = source or layout
    if tool == "bilantools":
        raise InputError(
            f"adopt reads another tool's history and {directory} is in bilantools' own layout: name "
            f"the tool that migrated the database with {option('source', 'TOOL')}"
        )
    return tool


def adopt(runner: Runner, tool: str, dry_run: bool) -> tuple[Adoption, list[str]]:
    """Record what `tool`'s history says is applied (nothing in a dry run); (the report
    without the catalog's word, the versions the peer says are applied)."""
    runner.migrations.require_valid()
    found: PeerHistory = peer(tool).read(runner.conn, runner.migrations.directory)
    paired = pair(found, runner.migrations)
    states = {s.version: s.state for s in runner.status().migrations}
    todo = [m for m in paired.applied if states.get(m.version) == "pending"]
    result = Adoption(
        runner.target_label,
        found.tool,
        found.table,
        runner.tracking.label,
        dry_run,
        recorded=[m.version for m in todo],
        already=[m.version for m in paired.applied if m not in todo],
        no_file=[row.key for row in paired.no_file],
        never=[m.version for m in paired.never],
    )
    if todo and not dry_run:
        done = runner.mark(todo, detail=f"adopted from {found.tool}'s history {found.table}")
        result.run_id = done.run_id
    return result, [m.version for m in paired.applied]


def confirm(result: Adoption, adopted: list[str], detection: Detection) -> Adoption:
    """`result` with the catalog's word on each adopted migration (detect's shares)."""
    wanted = set(adopted)
    result.confirmed = [share for share in detection.shares if share["version"] in wanted]
    return result
