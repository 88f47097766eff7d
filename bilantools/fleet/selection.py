"""Which databases a fleet command runs on, in which waves.

Three sources: the fleet file filtered by ``--targets NAME|label:LABEL``; ``--db`` given
several times (one wave); or ``--from-query`` on a server, each row a database of that
server (database-per-tenant). A database reached twice (same host, port and name) runs
once, in the first wave that has it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bilantools.db.target import Target
from bilantools.errors import InputError, option
from bilantools.fleet.file import (
    DEFAULT_PARALLEL,
    Fleet,
    FleetTarget,
    OnError,
    default_fleet_path,
    load_fleet,
)
from bilantools.session import resolve_target


@dataclass(frozen=True)
class Member:
    """A target of the rollout, by the name it is shown with."""

    name: str
    target: Target


@dataclass(frozen=True)
class Stage:
    """One wave as it runs: its members, how many at once, and what a failure does."""

    name: str
    members: tuple[Member, ...]
    parallel: int = DEFAULT_PARALLEL
    on_error: OnError = "stop"


def from_fleet(fleet: Fleet, selectors: Sequence[str] = ()) -> list[Stage]:
    """The fleet's waves, each with the targets `selectors` keep (all when none)."""
    chosen = _chosen(fleet, selectors)
    stages = []
    for wave in fleet.waves:
        members = tuple(Member(t.name, _resolve(t)) for t in fleet.members(wave) if t.name in chosen)
        stages.append(Stage(wave.name, members, wave.parallel, wave.on_error))
    return _unique(stages)


def _chosen(fleet: Fleet, selectors: Sequence[str]) -> set[str]:
    if not selectors:
        return set(fleet.targets)
    chosen: set[str] = set()
    for selector in selectors:
        if selector.startswith("label:"):
            label = selector.removeprefix("label:")
            found = {t.name for t in fleet.targets.values() if label in t.labels}
            labels = sorted({lab for t in fleet.targets.values() for lab in t.labels})
            if not found:
                raise InputError(
                    f"no target of {fleet.source} has label '{label}'; "
                    f"the labels are {', '.join(labels) or 'none'}"
                )
        else:
            found = {selector} if selector in fleet.targets else set()
            if not found:
                raise InputError(
                    f"no target named '{selector}' in {fleet.source}; pass {option('targets', 'NAME')} or "
                    f"{option('targets', 'label:LABEL')} with one of {', '.join(fleet.targets)}"
                )
        chosen |= found
    return chosen


def _resolve(target: FleetTarget) -> Target:
    return resolve_target(target=target.connection_string())


def from_urls(
    urls: Sequence[str], parallel: int = DEFAULT_PARALLEL, on_error: OnError = "stop"
) -> list[Stage]:
    """One wave of the databases `urls`, each named after its database (made unique)."""
    targets = [resolve_target(target=url) for url in urls]
    return _unique([Stage("adhoc", _named(targets), parallel, on_error)])


def query_databases(
    server: str, query: str, parallel: int = DEFAULT_PARALLEL, on_error: OnError = "stop"
) -> list[Stage]:
    """One wave of the databases of `server` that `query` lists (its first column), run
    in a read-only transaction."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    base = resolve_target(target=server)
    with base.connect("bilantools fleet query") as conn:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                rows = conn.execute(query.encode()).fetchall()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise InputError(
                f"the query of {option('from_query', 'SQL')} failed on {base.masked}: {reason}; "
                "write a SELECT whose first column is a database name"
            ) from None
    names = [row[0] for row in rows if row and row[0]]
    if not all(isinstance(n, str) for n in names):
        raise InputError(
            f"the query of {option('from_query', 'SQL')} must return database names (text) in its first "
            "column, e.g. SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%'"
        )
    targets = [resolve_target(target=make_conninfo(base.conninfo, dbname=n)) for n in names]
    return _unique([Stage("query", _named(targets), parallel, on_error)])


def _named(targets: list[Target]) -> tuple[Member, ...]:
    """Members named after their database name, with -2, -3... where names repeat."""
    seen: dict[str, int] = {}
    members = []
    for target in targets:
        base = re.sub(r"\s+", "_", target.dbname) or "db"
        seen[base] = seen.get(base, 0) + 1
        members.append(Member(base if seen[base] == 1 else f"{base}-{seen[base]}", target))
    return tuple(members)


def identity(target: Target) -> tuple[str, str, str]:
    """(host, port, database): two targets that agree reach the same database."""
    host = target.params.get("host", "") or "localhost"
    host = "localhost" if host in ("127.0.0.1", "::1") else host
    return host, target.params.get("port", "") or "5432", target.dbname


def _unique(stages: list[Stage]) -> list[Stage]:
    """The stages with each database kept once (the first time it comes), empty ones dropped."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for stage in stages:
        members = []
        for member in stage.members:
            key = identity(member.target)
            if key not in seen:
                seen.add(key)
                members.append(member)
        if members:
            kept.append(Stage(stage.name, tuple(members), stage.parallel, stage.on_error))
    if not kept:
        raise InputError(f"no database selected; check {option('targets', 'NAME')} against the fleet file")
    return kept


@dataclass(frozen=True)
class Selection:
    """Which databases: `from_query` on the one `db` server, else the `db` URLs, else the
    fleet file (`fleet_file`, or the default beside the project) filtered by `targets`
    (names, label:LABEL). `parallel` overrides the waves' own."""

    fleet_file: Path | str | None = None
    targets: Sequence[str] = ()
    db: Sequence[str] = ()
    from_query: str | None = None
    parallel: int | None = None

    def stages(self, migrations: Path) -> list[Stage]:
        """The waves, for the project of directory `migrations`."""
        db, targets = self.db, self.targets
        if self.from_query is not None:
            if len(db) != 1 or targets:
                raise InputError(
                    f"{option('from_query', 'SQL')} lists the databases of one server: pass it with one "
                    f"{option('db', 'SERVER_URL')} and no {option('targets', 'NAME')}"
                )
            stages = query_databases(db[0], self.from_query)
        elif db:
            if targets or self.fleet_file is not None:
                raise InputError(
                    f"{option('db', 'URL')} makes a fleet of its own: pass either it, or a fleet file with "
                    f"{option('targets', 'NAME')}"
                )
            stages = from_urls(db)
        else:
            path = Path(self.fleet_file) if self.fleet_file is not None else default_fleet_path(migrations)
            stages = from_fleet(load_fleet(path), targets)
        if self.parallel is not None:
            stages = [Stage(s.name, s.members, self.parallel, s.on_error) for s in stages]
        return stages
