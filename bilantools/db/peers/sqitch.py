"""Sqitch's registry: schema ``sqitch`` with ``changes`` (one row per deployed change,
deleted on revert), ``tags``, ``events`` and more, for every project deployed to the
database; the project is the plan's ``%project`` pragma. Sqitch reverts a failed deploy
(and records a 'fail' event), so a change row is a deployed change.

A reworked change has two rows of the same name (the earlier one under its tag): the
key of each is the change name, so both pair with the plan's one name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.peers import PeerHistory, PeerRow, located, require_table
from bilantools.errors import InputError

if TYPE_CHECKING:
    import psycopg

NAME = "sqitch"
SCHEMA = "sqitch"
COLUMNS = ("change_id", "script_hash", "change", "project", "note", "committed_at")
_PROJECT = re.compile(r"^%\s*project\s*=\s*(\S+)", re.M)


def project_of(directory: Path) -> str | None:
    """The ``%project`` of `directory`'s sqitch.plan (None without a plan)."""
    plan = directory / "sqitch.plan"
    if not plan.is_file():
        return None
    found = _PROJECT.search(plan.read_text(encoding="utf-8", errors="replace"))
    return found[1] if found else None


def read(conn: psycopg.Connection, directory: Path) -> PeerHistory:
    """The changes of the plan's project deployed to the target, in deploy order, each with
    its tags (``@tag``, as Sqitch stores them) after its change_id in the description."""
    label, columns = located(conn, "changes", SCHEMA)
    require_table(NAME, label, columns, COLUMNS)
    project = project_of(directory)
    known = [p for (p,) in conn.execute("SELECT DISTINCT project FROM sqitch.changes ORDER BY 1").fetchall()]
    if project is None:
        if len(known) > 1:
            raise InputError(
                f"{label} holds the changes of several Sqitch projects ({', '.join(known)}) and "
                f"{directory / 'sqitch.plan'} names none: give the plan its %project=NAME pragma"
            )
        project = known[0] if known else ""
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
            PeerRow(change, f"{change_id} {tags}".strip(), at, script_hash)
            for change, change_id, at, script_hash, tags in rows
        ],
    )
