"""The peer migration tools, run on the same SQL files as bilantools (issue 9).

One adapter per tool. `prepare` lays out the tool's project from a corpus's files once,
untimed, in a scratch directory; the layout does not depend on the database, whose URL
is given on each command line, so the same layout serves every fresh database. `tool()`
turns an adapter into an `apply_overhead.Tool`, whose `run` (the timed part) is only the
tool's apply in a subprocess, and whose `check` asks the tool's own history table whether
every migration was recorded (the schema itself is compared by `apply_overhead.verify`).

The SQL that reaches the server is the corpus's, statement for statement; where a tool
cannot take a file as it is, the adapter's docstring says why and what was changed
(never a statement). Transaction behaviour differs between tools and is part of what
is measured: each adapter's docstring states it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from apply_overhead import BenchError, Corpus, Server, Tool, _check

REPO = Path(__file__).resolve().parent.parent
BENCH_TOOLS = REPO / ".bench-tools"  # `make bench-peers` installs dbmate here (git-ignored)
VENV_BIN = Path(sys.executable).parent


def rollback_of(forward: Path) -> Path:
    """NNN_slug_rollback.sql beside NNN_slug.sql (bilantools' naming)."""
    return forward.with_name(forward.stem + "_rollback.sql")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def version_of(forward: Path) -> str:
    return forward.name.split("_", 1)[0]


def count_rows(url: str, query: str) -> int:
    """One integer from the tool's history, read after the run (untimed)."""
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(query).fetchone()
    except psycopg.Error as exc:
        raise BenchError(f"cannot read the tool's history ({query}): {exc}") from None
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Layout:
    """A prepared project: where it is and what the commands need besides the URL."""

    root: Path
    env: dict[str, str]


class Peer(ABC):
    """One migration tool: how to find it, lay out its project, apply and ask status."""

    key: str  # short, used in database and directory names
    label: str
    status_label: str  # the status command, as the report names it
    transactions: str  # one line for the report: how the tool commits
    tracking: frozenset[str] = frozenset()  # its history tables in public

    def __init__(self) -> None:
        self.layouts: dict[Path, Layout] = {}

    @abstractmethod
    def missing(self) -> str | None:
        """Why the tool cannot run here (not installed), or None."""

    @abstractmethod
    def layout(self, corpus: Corpus, root: Path, server: Server) -> dict[str, str]:
        """Write the project under `root`; return extra environment for its commands."""

    @abstractmethod
    def apply_argv(self, root: Path, url: str) -> list[str]: ...

    @abstractmethod
    def status_argv(self, root: Path, url: str) -> list[str]: ...

    @abstractmethod
    def up_to_date(self, stdout: str, corpus: Corpus) -> bool:
        """Whether the status output says that nothing is pending."""

    @abstractmethod
    def recorded(self, url: str) -> int:
        """How many migrations the tool's history says are applied."""

    def version(self) -> str:
        return "unknown"

    def prepare(self, corpus: Corpus, scratch: Path, server: Server) -> None:
        root = scratch / f"{self.key}-{corpus.name}"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        extra = self.layout(corpus, root, server)
        self.layouts[corpus.directory] = Layout(root, {**server.env, **extra})

    def _layout(self, corpus: Corpus) -> Layout:
        try:
            return self.layouts[corpus.directory]
        except KeyError:
            raise BenchError(f"{self.label}: not prepared for {corpus.name}") from None

    def run(self, server: Server, url: str, corpus: Corpus) -> None:
        """The timed part: the tool's apply, as a user runs it, in a subprocess."""
        lay = self._layout(corpus)
        _check(_run_in(lay, self.apply_argv(lay.root, url)), f"{self.label} apply")

    def status(self, server: Server, url: str, corpus: Corpus) -> None:
        """The tool's status on a migrated database: must succeed and show nothing pending."""
        lay = self._layout(corpus)
        proc = _run_in(lay, self.status_argv(lay.root, url))
        _check(proc, f"{self.label} status")
        if not self.up_to_date(proc.stdout, corpus):
            raise BenchError(f"{self.label} status: not up to date: {proc.stdout[-300:]!r}")

    def check(self, server: Server, url: str, corpus: Corpus) -> None:
        recorded = self.recorded(url)
        if recorded != corpus.count:
            raise BenchError(f"{self.label} on {corpus.name}: records {recorded} of {corpus.count}")

    def tool(self) -> Tool:
        return Tool(self.key, self.label, self.run, False, self.tracking, self.check)


def _run_in(lay: Layout, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """apply_overhead._run with the layout's environment, from the layout's directory."""
    return subprocess.run(
        argv, capture_output=True, text=True, env=lay.env, cwd=lay.root, stdin=subprocess.DEVNULL, check=False
    )


def with_scheme(url: str, scheme: str) -> str:
    return scheme + url.split("://", 1)[1]


# -- yoyo-migrations ----------------------------------------------------------------------
YOYO_DIRECTIVE = re.compile(r"^\s*--\s*(transactional|depends)\s*:", re.MULTILINE)
YOYO_GUARD = "/* bench: ends yoyo's leading-comment block; the migration's comments follow */\n"


class Yoyo(Peer):
    """yoyo-migrations (`yoyo apply --batch`), its SQL migrations read from the files.

    Transactions: one per migration for its statements, on a new connection per
    migration (yoyo's backend.copy()); the statements are sent one by one (yoyo splits
    the file with sqlparse, which keeps `$fn$` bodies whole). Then, on the main
    connection, the log row (autocommit) and the applied mark (a transaction): three
    commits and one extra connection per migration, plus the lock row per run.

    Change to the files: yoyo reads `-- depends: X Y` (and `-- transactional:`) lines in
    a file's leading comments as its own directives, with migration ids that are file
    names without `.sql`. The project's migrations have such lines (`-- depends: 002, 011`:
    versions, comma-separated), so yoyo refuses them ("Could not resolve dependencies").
    For those files only, one block comment line goes first (YOYO_GUARD): a line that is
    not a `--` comment ends yoyo's leading block, and the statements stay identical.
    """

    key = "yoyo"
    label = "yoyo-migrations apply"
    status_label = "yoyo list"
    transactions = (
        "a transaction and a new connection per migration, statements sent one by one,"
        " then the log and mark rows committed apart (3 commits per migration)"
    )
    tracking = frozenset({"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"})

    def missing(self) -> str | None:
        return None if (VENV_BIN / "yoyo").is_file() else "yoyo not installed (pip install -e '.[bench]')"

    def version(self) -> str:
        from importlib.metadata import version

        return version("yoyo-migrations")

    def layout(self, corpus: Corpus, root: Path, server: Server) -> dict[str, str]:
        target = root / "migrations"
        target.mkdir()
        for forward in corpus.files:
            text = read(forward)
            guard = YOYO_GUARD if YOYO_DIRECTIVE.search(_leading_comments(text)) else ""
            (target / forward.name).write_text(guard + text, encoding="utf-8")
            rollback = read(rollback_of(forward))
            if rollback:
                (target / f"{forward.stem}.rollback.sql").write_text(rollback, encoding="utf-8")
        return {}

    def apply_argv(self, root: Path, url: str) -> list[str]:
        db = with_scheme(url, "postgresql+psycopg://")
        return [
            str(VENV_BIN / "yoyo"),
            "apply",
            "--batch",
            "--no-config-file",
            "--database",
            db,
            "migrations",
        ]

    def status_argv(self, root: Path, url: str) -> list[str]:
        db = with_scheme(url, "postgresql+psycopg://")
        return [str(VENV_BIN / "yoyo"), "list", "--batch", "--no-config-file", "--database", db, "migrations"]

    def up_to_date(self, stdout: str, corpus: Corpus) -> bool:
        # `yoyo list` prints one line per migration: its state (A applied, U unapplied), id, source.
        rows = [ln.split() for ln in stdout.splitlines()]
        marks = [r[0] for r in rows if len(r) >= 2 and re.match(r"\d+_", r[1])]
        return marks.count("A") == corpus.count and "U" not in marks

    def recorded(self, url: str) -> int:
        return count_rows(url, "SELECT count(*) FROM _yoyo_migration")


def _leading_comments(text: str) -> str:
    """The file's first lines up to the first that is neither blank nor a `--` comment."""
    lines = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


# -- alembic ------------------------------------------------------------------------------
ALEMBIC_ENV = '''\
"""Generated by bench/peers.py: the URL comes from `-x url=...`."""
from alembic import context
from sqlalchemy import create_engine, pool

url = context.get_x_argument(as_dictionary=True)["url"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=PER_MIGRATION)
    with context.begin_transaction():
        context.run_migrations()
'''

ALEMBIC_SCRIPT = '''\
"""{name} (generated by bench/peers.py from the corpus file of the same name)."""
from pathlib import Path

from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None

SQL = Path(__file__).resolve().parent.parent / "sql"


def upgrade():
    op.execute((SQL / {forward!r}).read_text(encoding="utf-8"))


def downgrade():
    op.execute((SQL / {rollback!r}).read_text(encoding="utf-8"))
'''


class Alembic(Peer):
    """alembic (`alembic upgrade head`): one script per migration, a linear chain.

    Each script `op.execute`s its file's SQL as one string (SQLAlchemy text(), run by
    psycopg: a string without parameters goes as one simple query, so PL/pgSQL bodies
    and several statements per file are fine).

    Transactions: env.py sets `transaction_per_migration=True`, one transaction per
    migration with the alembic_version update in it, as bilantools does. Alembic's
    default (False) would run the whole upgrade in one transaction: the `per_migration`
    argument chooses.
    """

    key = "alembic"
    label = "alembic upgrade head"
    status_label = "alembic current"
    transactions = (
        "a transaction per migration (transaction_per_migration=True) with the alembic_version update"
    )
    tracking = frozenset({"alembic_version"})

    def __init__(self, per_migration: bool = True) -> None:
        super().__init__()
        self.per_migration = per_migration
        if not per_migration:
            self.key, self.label = "alembic1", "alembic upgrade head (one transaction)"
            self.status_label = "alembic current (one-transaction layout)"
            self.transactions = "the whole upgrade in one transaction (alembic's default)"

    def missing(self) -> str | None:
        return (
            None if (VENV_BIN / "alembic").is_file() else "alembic not installed (pip install -e '.[bench]')"
        )

    def version(self) -> str:
        from importlib.metadata import version

        return version("alembic")

    def layout(self, corpus: Corpus, root: Path, server: Server) -> dict[str, str]:
        (root / "versions").mkdir()
        (root / "sql").mkdir()
        (root / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s\n", encoding="utf-8")
        (root / "env.py").write_text(
            ALEMBIC_ENV.replace("PER_MIGRATION", str(self.per_migration)), encoding="utf-8"
        )
        down: str | None = None
        for forward in corpus.files:
            shutil.copy2(forward, root / "sql" / forward.name)
            rollback = rollback_of(forward)
            if rollback.is_file():
                shutil.copy2(rollback, root / "sql" / rollback.name)
            revision = version_of(forward)
            (root / "versions" / f"{forward.stem}.py").write_text(
                ALEMBIC_SCRIPT.format(
                    name=forward.name,
                    revision=revision,
                    down=down,
                    forward=forward.name,
                    rollback=rollback.name,
                ),
                encoding="utf-8",
            )
            down = revision
        return {}

    def _argv(self, root: Path, url: str, *command: str) -> list[str]:
        db = with_scheme(url, "postgresql+psycopg://")
        return [str(VENV_BIN / "alembic"), "-c", str(root / "alembic.ini"), "-x", f"url={db}", *command]

    def apply_argv(self, root: Path, url: str) -> list[str]:
        return self._argv(root, url, "upgrade", "head")

    def status_argv(self, root: Path, url: str) -> list[str]:
        return self._argv(root, url, "current")

    def up_to_date(self, stdout: str, corpus: Corpus) -> bool:
        return f"{version_of(corpus.files[-1])} (head)" in stdout

    def recorded(self, url: str) -> int:
        """Unused: alembic keeps only the head revision, see `check`."""
        return 0

    def check(self, server: Server, url: str, corpus: Corpus) -> None:
        """The recorded head must be the last file's revision (the chain is linear)."""
        try:
            with psycopg.connect(url) as conn:
                rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except psycopg.Error as exc:
            raise BenchError(f"{self.label}: cannot read alembic_version: {exc}") from None
        head = version_of(corpus.files[-1])
        if [r[0] for r in rows] != [head]:
            raise BenchError(f"{self.label} on {corpus.name}: alembic_version {rows}, expected {head}")


# -- dbmate -------------------------------------------------------------------------------
class Dbmate(Peer):
    """dbmate (`dbmate migrate`), the npm package's binary, from `.bench-tools`.

    Each file becomes `db/migrations/NNN_slug.sql`: `-- migrate:up`, the forward file,
    `-- migrate:down`, the rollback file (dbmate's format; the SQL is unchanged).

    Transactions: one per migration (dbmate's default), the whole up section sent as one
    simple query, the version row inserted in the same transaction.

    Options chosen: `--migrations-table dbmate_migrations`, because dbmate's default
    table is `schema_migrations`, which migration 029 creates with other columns
    (`CREATE TABLE IF NOT EXISTS` keeps dbmate's, then 029's SQL functions, checked at
    creation, fail on the missing `success` column); `--no-dump-schema`, because
    dbmate otherwise runs pg_dump after every migrate to write db/schema.sql.
    """

    key = "dbmate"
    label = "dbmate migrate"
    status_label = "dbmate status"
    transactions = "a transaction per migration (the up section as one query) with the version row"
    tracking = frozenset({"dbmate_migrations"})

    def binary(self) -> Path | None:
        local = BENCH_TOOLS / "node_modules" / ".bin" / "dbmate"
        if local.exists():
            return local
        found = shutil.which("dbmate")
        return Path(found) if found else None

    def missing(self) -> str | None:
        return (
            None
            if self.binary()
            else "dbmate not installed (make bench-peers: npm install --prefix .bench-tools)"
        )

    def version(self) -> str:
        proc = subprocess.run([str(self.binary()), "--version"], capture_output=True, text=True, check=False)
        return proc.stdout.strip().removeprefix("dbmate version ")

    def layout(self, corpus: Corpus, root: Path, server: Server) -> dict[str, str]:
        target = root / "db" / "migrations"
        target.mkdir(parents=True)
        for forward in corpus.files:
            text = f"-- migrate:up\n{read(forward)}\n-- migrate:down\n{read(rollback_of(forward))}"
            (target / forward.name).write_text(text, encoding="utf-8")
        return {}

    def _argv(self, root: Path, url: str, command: str) -> list[str]:
        parts = urlsplit(url)
        db = f"postgres://{parts.netloc}{parts.path}?sslmode=disable"
        return [
            str(self.binary()),
            "--url",
            db,
            "--migrations-dir",
            str(root / "db" / "migrations"),
            "--migrations-table",
            "dbmate_migrations",
            "--no-dump-schema",
            command,
        ]

    def apply_argv(self, root: Path, url: str) -> list[str]:
        return self._argv(root, url, "migrate")

    def status_argv(self, root: Path, url: str) -> list[str]:
        return self._argv(root, url, "status")

    def up_to_date(self, stdout: str, corpus: Corpus) -> bool:
        return f"Applied: {corpus.count}" in stdout and "Pending: 0" in stdout

    def recorded(self, url: str) -> int:
        return count_rows(url, "SELECT count(*) FROM dbmate_migrations")


# -- sqitch -------------------------------------------------------------------------------
class Sqitch(Peer):
    """sqitch (`sqitch deploy db:pg:...`), Debian's package, with libdbd-pg-perl.

    A sqitch.plan with one change per file, in order (linear: no dependencies needed),
    `deploy/NNN_slug.sql` the forward file and `revert/NNN_slug.sql` the rollback, both
    unchanged; no verify scripts. Its registry goes to the schema `sqitch` of the target
    database (not public), created by the first deploy.

    Transactions: sqitch runs each deploy script with `psql -f` (the server's psql, set
    as engine.pg.client) and adds no transaction: sqitch expects scripts to carry their
    own BEGIN/COMMIT, and these files have none, so every statement commits on its own
    (a synchronous commit per statement). With `single=True` the client is a wrapper
    that adds `--single-transaction` (psql -1), one transaction per script as the
    others; the registry rows are written by sqitch's own connection, in transactions
    of their own, either way.
    """

    key = "sqitch"
    label = "sqitch deploy"
    status_label = "sqitch status"
    transactions = "no transaction around the scripts (psql -f, each statement commits); registry rows apart"

    def __init__(self, single: bool = False) -> None:
        super().__init__()
        self.single = single
        if single:
            self.key, self.label = "sqitch1", "sqitch deploy (psql -1 per script)"
            self.status_label = "sqitch status (psql -1 layout)"
            self.transactions = (
                "a transaction per script (psql --single-transaction wrapper); registry rows apart"
            )

    def missing(self) -> str | None:
        if not shutil.which("sqitch"):
            return "sqitch not installed (apt-get install sqitch libdbd-pg-perl)"
        probe = subprocess.run(["perl", "-MDBD::Pg", "-e1"], capture_output=True, check=False)
        return None if probe.returncode == 0 else "DBD::Pg missing (apt-get install libdbd-pg-perl)"

    def version(self) -> str:
        proc = subprocess.run(["sqitch", "--version"], capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    def layout(self, corpus: Corpus, root: Path, server: Server) -> dict[str, str]:
        (root / "deploy").mkdir()
        (root / "revert").mkdir()
        client = server.psql
        if self.single:
            client = root / "psql-1"
            client.write_text(
                f'#!/bin/sh\nexec "{server.psql}" --single-transaction "$@"\n', encoding="utf-8"
            )
            client.chmod(0o755)
        (root / "sqitch.conf").write_text(
            f"[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n"
            f'[engine "pg"]\n\tclient = {client}\n',
            encoding="utf-8",
        )
        (root / "user.conf").write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n")
        plan = ["%syntax-version=1.0.0", "%project=bench", ""]
        for forward in corpus.files:
            shutil.copy2(forward, root / "deploy" / forward.name)
            (root / "revert" / forward.name).write_text(read(rollback_of(forward)), encoding="utf-8")
            plan.append(f"{forward.stem} 2026-01-01T00:00:00Z bench <bench@example.invalid> # {forward.name}")
        (root / "sqitch.plan").write_text("\n".join(plan) + "\n", encoding="utf-8")
        return {
            "SQITCH_CONFIG": str(root / "sqitch.conf"),
            "SQITCH_USER_CONFIG": str(root / "user.conf"),
            "SQITCH_SYSTEM_CONFIG": "/dev/null",
        }

    def _target(self, url: str) -> str:
        return "db:pg:" + url.split(":", 1)[1]

    def apply_argv(self, root: Path, url: str) -> list[str]:
        return ["sqitch", "deploy", "--target", self._target(url)]

    def status_argv(self, root: Path, url: str) -> list[str]:
        return ["sqitch", "status", "--target", self._target(url)]

    def up_to_date(self, stdout: str, corpus: Corpus) -> bool:
        return "Nothing to deploy (up-to-date)" in stdout

    def recorded(self, url: str) -> int:
        return count_rows(url, "SELECT count(*) FROM sqitch.changes")


def all_peers() -> list[Peer]:
    """Every adapter, in the order the report lists them (variants after their default)."""
    return [Yoyo(), Alembic(), Alembic(per_migration=False), Dbmate(), Sqitch(), Sqitch(single=True)]
