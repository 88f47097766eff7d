"""The fault suite: concurrency, killed runners, server crashes, blocking, bad input,
properties, secrets, privileges and injection.

Every test here is marked `faults`. `make test` runs the fast scale (a few rounds of
each fault); `make faults` sets BILANTOOLS_FAULTS=full and runs the counts the README's
reliability section quotes. Each test records what it exercised with `figures.add`; the
totals are printed at the end of the run, and they are the figures the README quotes.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from bilantools.db.sandbox import Sandbox
from tests.conftest import TEMPLATE

FULL = os.environ.get("BILANTOOLS_FAULTS", "").lower() == "full"


def scale(fast: int, full: int) -> int:
    """How many rounds a fault test runs: `full` under `make faults`, else `fast`."""
    return full if FULL else fast


class Figures:
    """Counts per fault kind, summed over the tests of the run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, what: str, count: int = 1) -> None:
        self.counts[what] += count


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    yield _FIGURES


@dataclass
class Role:
    """A LOGIN role with a password, owner of its databases; dropped at the end."""

    server: Sandbox
    name: str
    password: str
    databases: list[str] = field(default_factory=list)

    def url(self, dbname: str, password: str | None = None, port: int | None = None) -> str:
        running = self.server.running()
        assert running is not None
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{self.name}:{secret}@127.0.0.1:{port or running.port}/{dbname}"

    def own(self, dbname: str) -> None:
        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(self.name)
                )
            )
        with psycopg.connect(self.server.url(dbname), autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(self.name)))
        self.databases.append(dbname)

    def new_db(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.server.new_db(name, template=TEMPLATE)
        self.own(name)
        return name


@pytest.fixture
def make_role(server: Sandbox, db_url: str) -> Iterator[Any]:
    """make_role(password) -> Role owning the test's database; every role and its
    databases are dropped afterwards (roles are cluster-wide)."""
    made: list[Role] = []

    def make(password: str) -> Role:
        role = Role(server, "bt_secret_" + uuid.uuid4().hex[:10], password)
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role.name), sql.Literal(password)
                )
            )
        role.own(db_url.rsplit("/", 1)[1])
        made.append(role)
        return role

    yield make
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for role in made:
            for dbname in role.databases:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
                )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES.counts:
        return
    terminalreporter.section(f"fault suite figures ({'full' if FULL else 'fast'} scale)")
    for what, count in sorted(_FIGURES.counts.items()):
        terminalreporter.write_line(f"{what}: {count}")
