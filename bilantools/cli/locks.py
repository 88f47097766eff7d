"""`bilantools locks`: who waits for whom in the target database, the long transactions
and the holder of the migration lock. Reads only."""

from __future__ import annotations

from typing import Any

import click

from bilantools import commands
from bilantools.cli.flags import Context, json_option, pass_ctx
from bilantools.cli.output import print_json, print_table

QUERY_WIDTH = 60


@click.command()
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="List transactions open longer than this (default: max-transaction-age-s of the gates, 60).",
)
@json_option
@pass_ctx
def locks(obj: Context, older_than: float | None, as_json: bool) -> None:
    """Lock waiters and what blocks them, long transactions, and who holds the migration lock."""
    found = commands.locks(target=obj.target(), project=obj.migrations, older_than=older_than)
    if as_json:
        print_json(found.as_dict())
        return
    _section(
        f"waiting for a lock ({len(found.waiters)})",
        ["PID", "USER", "APPLICATION", "MODE", "ON", "WAITED", "BLOCKED BY", "QUERY"],
        [
            [
                w["pid"],
                w["user"],
                w["application"],
                w["mode"],
                w["relation"] or w["lock"],
                _age(w["waited_s"]),
                ", ".join(map(str, w["blocked_by"])),
                _short(w["query"]),
            ]
            for w in found.waiters
        ],
    )
    _section(
        f"blocking them ({len(found.blockers)})",
        ["PID", "USER", "APPLICATION", "STATE", "XACT", "HOLDS", "BLOCKING", "QUERY"],
        [
            [
                b["pid"],
                b["user"],
                b["application"],
                b["state"],
                _age(b["xact_age_s"]),
                ", ".join(b["holds"]),
                ", ".join(map(str, b["blocking"])),
                _short(b["query"]),
            ]
            for b in found.blockers
        ],
    )
    _section(
        f"transactions open longer than {found.older_than_s:g} s ({len(found.long_transactions)})",
        ["PID", "USER", "APPLICATION", "STATE", "XACT", "QUERY"],
        [
            [t["pid"], t["user"], t["application"], t["state"], _age(t["xact_age_s"]), _short(t["query"])]
            for t in found.long_transactions
        ],
    )
    holder = found.migration_lock
    if holder is None:
        click.echo("migration lock: free")
    else:
        since = str(holder["connected_at"])[:19].replace("T", " ")
        where = holder["host"] or holder["client"] or "local socket"
        who = f"{holder['application'] or '?'}, user {holder['user']}, from {where}"
        click.echo(
            f"migration lock: held by pid {holder['pid']} ({who}, connected since {since}, {holder['state']})"
        )


def _section(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    click.echo(f"{title}:" if rows else f"{title}: none")
    if rows:
        print_table(headers, [["" if c is None else str(c) for c in row] for row in rows])
        click.echo()


def _age(seconds: float | None) -> str:
    """12 s, 4.5 min, 2.1 h: a wait or a transaction's age."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _short(query: str | None) -> str:
    text = query or ""
    return text if len(text) <= QUERY_WIDTH else text[: QUERY_WIDTH - 1] + "…"
