"""Sqitch's registry: schema ``sqitch`` with ``changes`` (one row per deployed change,
deleted on revert), ``tags``, ``events`` and more, for every project deployed to the
database; the project is the plan's ``%project`` pragma. Sqitch reverts a failed deploy
(and records a 'fail' event), so a change row is a deployed change.

A row is keyed by its change ID where the plan's IDs can be computed (`change_ids`): a
reworked change's earlier instance is then told from the later one (``name@tag``, as the
Sqitch layout keys it); else by the change's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.peers import PeerHistory, PeerRow, located, require_table
from bilantools.errors import InputError
from bilantools.source.layouts.sqitch_plan import Plan, change_ids, parse_plan

if TYPE_CHECKING:
    import psycopg

NAME = "sqitch"
SCHEMA = "sqitch"
COLUMNS = ("change_id", "script_hash", "change", "project", "note", "committed_at")


def plan_of(directory: Path) -> Plan | None:
    """`directory`'s sqitch.plan, parsed (None without one)."""
    path = directory / "sqitch.plan"
    if not path.is_file():
        return None
    return parse_plan(path, path.read_text(encoding="utf-8", errors="replace"))


def read(conn: psycopg.Connection, directory: Path) -> PeerHistory:
    """The changes of the plan's project deployed to the target, in deploy order, each with
    its change ID and tags (``@tag``, as Sqitch stores them) in the description."""
    label, columns = located(conn, "changes", SCHEMA)
    require_table(NAME, label, columns, COLUMNS)
    plan = plan_of(directory)
    project = plan.project if plan is not None else None
    known = [p for (p,) in conn.execute("SELECT DISTINCT project FROM sqitch.changes ORDER BY 1").fetchall()]
    if project is None:
        if len(known) > 1:
            raise InputError(
                f"{label} holds the changes of several Sqitch projects ({', '.join(known)}) and "
                f"{directory / 'sqitch.plan'} names none: give the plan its %project=NAME pragma"
            )
        project = known[0] if known else ""
    ids = change_ids(plan) if plan is not None else None
    keys: dict[str, str] = {change_id: key for key, change_id in (ids or {}).items()}
    rows = conn.execute(
        "SELECT c.change, c.change_id, c.committed_at, c.script_hash,"
        " coalesce(string_agg(t.tag, ' ' ORDER BY t.committed_at), '')"
        " FROM sqitch.changes c LEFT JOIN sqitch.tags t ON t.change_id = c.change_id"
        " WHERE c.project = %s GROUP BY c.change_id ORDER BY c.committed_at, c.change_id",
        (project,),
    ).fetchall()
    return PeerHistory(
        NAME,
        f"{label} (project {project})",
        [
            PeerRow(str(keys.get(change_id, change)), f"{change_id} {tags}".strip(), at, script_hash)
            for change, change_id, at, script_hash, tags in rows
        ],
    )
