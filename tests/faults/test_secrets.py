"""Secrets: a password in the URL never shows anywhere.

The unit tests at the top check the masking itself. The fault tests below run every
command of the CLI (enumerated from the click group, so that a new command cannot be
forgotten) as a subprocess, with a URL that carries a real password (a role created with
LOGIN PASSWORD), given by ``--db`` and by ``DATABASE_URL``, succeeding and failing (a
migration that fails, a wrong password, an unreachable port); then every runbook notebook
with ``bilantools runbook run``. The password, in any of its spellings (as typed,
percent-encoded, JSON- or HTML-escaped), must appear in no stdout, stderr, file written
(backups and sidecars, runs/, plots, temporary files, the server log) and no row of
``schema_migrations`` or ``schema_migration_events``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import nbformat
import psycopg
import pytest
from psycopg import sql

from bilantools.cli.main import cli as cli_group
from bilantools.db.sandbox import Sandbox, embedded_bin
from bilantools.db.target import parse_target
from bilantools.errors import BilanToolsError, InputError
from bilantools.secrets import redact
from tests.conftest import FIXTURES
from tests.faults.conftest import FULL, Figures, Role, scale

REPO = Path(__file__).parent.parent.parent


# -- the masking itself ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "postgresql://app:pa55word@db.example.org:5432/bilan",
            "postgresql://app:***@db.example.org:5432/bilan",
        ),
        ("postgres://app:p%40ss@h/db?sslmode=require", "postgres://app:***@h/db?sslmode=require"),
        (
            "postgresql://app@h/db?password=hunter22&sslmode=require",
            "postgresql://app@h/db?password=***&sslmode=require",
        ),
        ("host=h user=app password='two words' dbname=x", "host=h user=app password=*** dbname=x"),
        ("postgresql://app:@h/db", "postgresql://app:@h/db"),
        ("no secret here", "no secret here"),
    ],
)
def test_redact_patterns(text: str, masked: str) -> None:
    assert redact(text) == masked


def test_registered_password_is_masked_anywhere() -> None:
    target = parse_target("postgresql://app:Zq9-unique-pw@h:5432/db", "--db")
    assert str(target) == repr(target).split("'")[1] == "postgresql://app:***@h:5432/db"
    assert "Zq9-unique-pw" not in repr(target)
    assert redact('server said: password "Zq9-unique-pw" rejected') == 'server said: password "***" rejected'
    assert "Zq9-unique-pw" not in str(BilanToolsError("failed with Zq9-unique-pw inside"))


def test_percent_encoded_password_is_masked_decoded_too() -> None:
    parse_target("postgresql://app:caf%C3%A9-p%40ss@h/db", "--db")
    assert redact("echo café-p@ss") == "echo ***"


def test_malformed_url_error_is_masked() -> None:
    with pytest.raises(InputError) as err:
        parse_target("postgresql://app:Leaky-Pw-77@h:port/db", "DATABASE_URL")
    assert "Leaky-Pw-77" not in str(err.value) and "app:***@h:port/db" in str(err.value)


# -- the fault tests: real roles, real passwords, the CLI as a subprocess -------------------------
PASSWORDS = {
    "distinctive": "Zq9-bilan-S3cret-7731",
    # URL-special characters, percent-encoded in the URL: @ / : and a quote, a percent sign, é
    "special": 'Sp@c/al:pw"é%x7',
    "short": "Q!z",  # under 4 characters: masked only where it stands as a whole word
}
# Commands that take no URL at all and would destroy the session's server if run here.
EXEMPT = {("sandbox", "reset"): "deletes every database of the sandbox it runs on; takes no URL"}
BROKEN = "SELECT * FROM table_that_does_not_exist;\n"
LEAKY_NOTEBOOK_CELLS = [
    "answer = 1",
    "import os\nfrom psycopg.conninfo import conninfo_to_dict\n"
    "url = os.environ['DATABASE_URL']\nprint('the url:', url)\nprint('the params:', conninfo_to_dict(url))",
    "import psycopg\npsycopg.connect(url, connect_timeout=5).close()\nprint('connected')",
    "raise RuntimeError(f\"deliberate failure quoting {url} and {conninfo_to_dict(url)['password']}\")",
]


def spellings(secret: str) -> set[str]:
    """Every way a password can be written down by a program."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        html.escape(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return {f for f in forms if f}


def leaks(text: str, secrets: set[str], binary: bool = False) -> list[str]:
    """The spellings found in `text`. In a binary file (a compressed dump) a 3-character
    sequence turns up by chance, so only the longer spellings count there."""
    return sorted(s for s in secrets if (not binary or len(s) >= 6) and s in text)


def command_paths() -> set[tuple[str, ...]]:
    """Every command of the click group, each `inspect` kind counted as its own command."""

    def walk(group: click.Group, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, command in group.commands.items():
            path = (*prefix, name)
            if isinstance(command, click.Group):
                if command.invoke_without_command:
                    yield path
                yield from walk(command, path)
            elif name == "inspect":
                kind = next(p for p in command.params if p.name == "kind")
                assert isinstance(kind.type, click.Choice)
                yield from ((*path, str(k)) for k in kind.type.choices)
            else:
                yield path

    return set(walk(cli_group, ()))


def path_of(args: list[str]) -> tuple[str, ...]:
    """The command path an argument list invokes (`backup --out d verify F` -> backup verify)."""
    group: click.Command = cli_group
    path: list[str] = []
    for token in args:
        if isinstance(group, click.Group) and token in group.commands:
            path.append(token)
            group = group.commands[token]
        elif path == ["inspect"]:
            path.append(token)
            break
    return tuple(path)


def logging_client_programs(directory: Path) -> Path:
    """pg_dump, pg_restore and psql that log their command line (what `ps` shows everyone)
    and whether a password reached them through the environment, then run the real ones."""
    real = embedded_bin()
    assert real is not None
    directory.mkdir()
    for name in ("pg_dump", "pg_restore", "psql"):
        script = directory / name
        script.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "{name} $* PGPASSFILE=${{PGPASSFILE:+set}} PGPASSWORD=${{PGPASSWORD:+set}}"'
            f' >> "{directory}/argv.log"\n'
            f'exec "{real / name}" "$@"\n'
        )
        script.chmod(0o755)
    return directory


def bilantools_program() -> list[str]:
    script = Path(sys.executable).with_name("bilantools")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bilantools"]


def closed_port() -> socket.socket:
    """A port bound and never listened on, held by the returned socket: a connection to it is
    refused, and no other process can take it meanwhile (a port merely found free was once
    taken by a server another test started, which answered the SSL negotiation)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Run:
    args: list[str]
    code: int
    out: str
    err: str


class Harness:
    """Runs the CLI as a subprocess against one database, checking every output for the
    secrets, and remembers what it ran."""

    def __init__(self, server: Sandbox, work: Path, source: str, url: str, secrets: set[str]) -> None:
        self.server = server
        self.work = work
        self.source = source
        self.url = url
        self.secrets = secrets
        self.tmp = work / "tmp"  # TMPDIR of every run: the temporary passfiles land here
        self.outside = work / "outside-home"  # a BILANTOOLS_HOME without a sandbox: "not the sandbox"
        for directory in (self.tmp, self.outside):
            directory.mkdir(parents=True, exist_ok=True)
        self.runs: list[Run] = []
        self.paths: set[tuple[str, ...]] = set()

    def __call__(
        self,
        *args: str,
        expect: int = 0,
        url: str | None = None,
        migrations: Path | None = None,
        outside: bool = False,
    ) -> Run:
        """Run `bilantools [--db URL] --migrations DIR ARGS`; `outside`: as if the database
        were not the sandbox (confirmation needed, automatic backup taken)."""
        target = self.url if url is None else url
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPASSWORD", "PGPASSFILE")}
        env.update(
            TMPDIR=str(self.tmp),
            TQDM_DISABLE="1",
            BILANTOOLS_HOME=str(self.outside if outside else self.server.home),
        )
        command = [*bilantools_program(), "--migrations", str(migrations or self.work / "migrations")]
        if self.source == "--db" and args[0] != "fleet":  # fleet takes its databases after the command
            command += ["--db", target]
        else:
            env["DATABASE_URL"] = target
        done = subprocess.run(
            [*command, *args], cwd=self.work, env=env, capture_output=True, text=True, timeout=300
        )
        run = Run(list(args), done.returncode, done.stdout, done.stderr)
        where = f"bilantools {' '.join(args)} (via {self.source})"
        assert not leaks(run.out + run.err, self.secrets), (
            f"{where} printed a password:\n{run.out}\n{run.err}"
        )
        assert "Traceback" not in run.err and "internal error" not in run.err, f"{where}:\n{run.err}"
        assert run.code == expect, f"{where}: exit {run.code}, expected {expect}\n{run.out}\n{run.err}"
        if expect == 2:
            assert run.err.strip().splitlines()[-1].startswith("error: "), f"{where}:\n{run.err}"
        self.runs.append(run)
        self.paths.add(path_of(list(args)))
        return run

    def no_stray_sandbox(self) -> None:
        """Nothing may have started a sandbox in the home without one (a server under pytest's
        temporary directory dies when another pytest session resets its permissions)."""
        stray = Sandbox(self.outside)
        if stray.running() is not None:
            stray.stop()
            raise AssertionError(f"a command started a sandbox in {self.outside}")

    def many(self, calls: list[tuple[list[str], dict[str, Any]]]) -> list[Run]:
        """Independent runs, a few at a time."""
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(lambda call: self(*call[0], **call[1]), calls))


def leaky_notebooks(directory: Path) -> Path:
    """A runbook that prints the URL and its parameters, then raises quoting the password."""
    directory.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in LEAKY_NOTEBOOK_CELLS]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, str(directory / "09_leaky.ipynb"))
    return directory


def scan_files(roots: list[Path], secrets: set[str], skip: set[Path] = frozenset()) -> int:  # type: ignore[assignment]
    """Assert that no file under `roots` holds a secret; return how many files were read."""
    count = 0
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            if path in skip:
                continue
            data = path.read_bytes()
            try:
                text, binary = data.decode("utf-8"), False
            except UnicodeDecodeError:
                text, binary = data.decode("latin-1"), True
            assert not leaks(text, secrets, binary), f"{path} holds a password"
            count += 1
    return count


def scan_tables(server: Sandbox, dbname: str, secrets: set[str]) -> int:
    """Assert that no tracking or event row holds a secret; return the rows read."""
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        rows: list[str] = []
        for table in ("schema_migrations", "schema_migration_events"):
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                query = sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(table))
                rows.extend(r[0] for r in conn.execute(query).fetchall())
    for row in rows:
        assert not leaks(row, secrets), f"{dbname}: a tracking row holds a password: {row}"
    return len(rows)


def server_log(server: Sandbox) -> Path:
    running = server.running()
    assert running is not None
    return running.data_dir.parent / "server.log"


# (password, source, thorough at the fast scale). Thorough: every variant of every
# command, and each failing connection both ways. The full scale runs all six thoroughly.
CASES = [
    ("special", "--db", True),
    ("short", "DATABASE_URL", False),
    ("distinctive", "--db", False),
    ("distinctive", "DATABASE_URL", False),
    ("special", "DATABASE_URL", False),
    ("short", "--db", False),
]


@pytest.mark.parametrize(
    ("kind", "source", "thorough"),
    [pytest.param(k, s, t or FULL, id=f"{k}-{s.strip('-')}") for k, s, t in CASES[: scale(2, len(CASES))]],
)
def test_every_command_keeps_the_password_secret(
    kind: str,
    source: str,
    thorough: bool,
    server: Sandbox,
    db_url: str,
    make_role: Any,
    tmp_path: Path,
    figures: Figures,
) -> None:
    password = PASSWORDS[kind]
    role: Role = make_role(password)
    wrong = "Wr0ng-" + password
    secrets = spellings(password) | spellings(wrong)
    dbname = db_url.rsplit("/", 1)[1]
    work = tmp_path / "work"
    shutil.copytree(FIXTURES / "basic", work / "migrations")
    broken = work / "broken"
    shutil.copytree(FIXTURES / "basic", broken)
    (broken / "004_broken.sql").write_text(BROKEN)
    (broken / "004_broken_rollback.sql").write_text("SELECT 1;\n")
    notebooks = leaky_notebooks(work / "nb")
    log = server_log(server)
    log_start = log.stat().st_size
    h = Harness(server, work, source, role.url(dbname), secrets)
    restore_db = role.new_db()
    scratch_db = "bt_secret_new_" + uuid.uuid4().hex[:8]
    kinds = sorted(p[1] for p in command_paths() if p[0] == "inspect" and p[1] != "table")

    def variant(*args: str, **options: Any) -> None:
        """Another spelling of a command already run (--json, --details...): thorough only."""
        if thorough:
            h(*args, **options)

    # a never-migrated database, the plan and a dry run
    assert "3 pending" in h("status").out
    variant("status", "--json")
    assert "3 migration(s) to apply" in h("plan").out
    variant("plan", "--json")
    assert "BEGIN;" in h("plan", "--sql").out
    assert "nothing was changed" in h("apply", "--dry-run").out
    # as for a database that is not the sandbox: refused without a terminal, then --yes,
    # which takes the automatic backup first
    assert "pass --yes" in h("apply", expect=2, outside=True).err
    assert "1 migration(s) applied" in h("apply", "--yes", "--to", "001", outside=True).out
    rest = json.loads(h("apply", "--yes", "--json", outside=True).out)
    assert rest["ok"] and [s["version"] for s in rest["steps"]] == ["002", "003"] and rest["backup"]
    assert len(list((work / "backups").glob("*.dump.json"))) == 2, "the automatic backups"
    # a migration that fails: recorded with the server's error, then repaired
    assert "migration 004_broken failed" in h("apply", "--yes", migrations=broken, expect=1).err
    assert "failed" in h("status", migrations=broken).out
    h("validate", migrations=broken, expect=1)
    assert "cleared failed row" in h("repair", "--yes", migrations=broken).out
    # everything that only reads, a few at a time
    reads = [["status"], ["validate"], ["verify"], ["drift"], ["fingerprint"], ["detect"], ["stats"]]
    reads += [["check"], ["graph"], *(["inspect", k] for k in kinds), ["inspect", "table", "people"]]
    reads += [["history"], ["erd", "--out", str(work / "erd.svg")], ["locks"], ["locks", "--json"]]
    if thorough:
        reads += [["verify", "--all", "--json"], ["fingerprint", "--details", "--json"], ["detect", "--json"]]
        reads += [["inspect", "tables", "--json"], ["check", "--json"], ["stats", "--json"]]
        reads += [["graph", "--format", "dot", "-o", str(work / "graph.dot")]]
        reads += [["history", "--json"], ["inspect", "table", "people", "--json"], ["erd", "--format", "dot"]]
    done = dict(zip(map(tuple, reads), h.many([(args, {}) for args in reads]), strict=True))
    assert "3 applied" in done[("status",)].out and "no drift" in done[("drift",)].out
    assert "people_name_idx" in done[("inspect", "indexes")].out
    h("stats", "--exact-rows", "--plots", str(work / "plots"))
    # backups: take one, list, verify (a restore drill in the sandbox), diff, restore
    taken = json.loads(h("backup", "--out", "bk", "--json").out)
    h("backup", "--schema-only", "--format", "plain", "--out", "bk")
    h("backup", "--out", "bk", "list")
    variant("backup", "--out", "bk", "list", "--json")
    assert h("backup", "verify", taken["file"]).out.strip().endswith(": OK")
    assert "no difference" in h("backup", "diff", taken["file"]).out
    assert "restored" in h("restore", taken["file"], "--yes", url=role.url(restore_db), outside=True).out
    assert "people" in h("inspect", "tables", url=role.url(restore_db)).out
    # the client programs get the password from a temporary passfile, never their arguments
    wrap = logging_client_programs(work / "wrapped")
    h("--pg-bin", str(wrap), "backup", "--out", "bk")
    h("--pg-bin", str(wrap), "restore", taken["file"], "--clean", "--yes", url=role.url(restore_db))
    argv = (wrap / "argv.log").read_text()
    for program in ("pg_dump", "pg_restore"):
        line = next(x for x in argv.splitlines() if x.startswith(f"{program} ") and "--dbname" in x)
        assert role.name in line and line.endswith("PGPASSFILE=set PGPASSWORD="), line
    # rollback, baseline
    assert "nothing was changed" in h("rollback", "--dry-run").out
    assert "003_seed_people_rollback.sql" in h("rollback", "--sql").out
    assert "1 migration(s) rolled back" in h("rollback", "--yes", outside=True).out
    assert "1 migration(s) baselined" in h("baseline", "--to", "003", "--yes", outside=True).out
    # adopt: reads another tool's history (here public.schema_migrations is ours: refused)
    assert "bilantools' own history, not dbmate's" in h("adopt", "--from", "dbmate", "--yes", expect=2).err
    # a runbook that prints the URL and its parameters, then fails quoting the password
    leaky = h("runbook", "run", "09", "--notebooks", str(notebooks), "--runs", "runs", expect=1)
    assert "failed at cell 4 (RuntimeError)" in leaky.err
    executed = next((work / "runs").glob("*_09_leaky.ipynb"))
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(str(executed), 4).cells])
    assert "the url: postgresql://" in outputs and "connected" in outputs  # printed, masked
    h("runbook", "list", "--runs", "runs")
    # the fleet commands, on a fleet of this database given to the fleet's own --db, and
    # on a fleet a query lists on the server
    fleet = ["--db", role.url(dbname)]
    assert "1 done" in h("fleet", "rollback", *fleet, "--yes").out  # 003, baselined above
    assert json.loads(h("fleet", "apply", *fleet, "--yes", "--json").out)["summary"]["done"] == 1
    for action in ("status", "plan", "validate", "verify", "drift"):
        h("fleet", action, *fleet)
    h("fleet", "backup", *fleet, "--out", "bk-fleet")
    h("fleet", "status", *fleet, "--from-query", "SELECT current_database()")
    # the sandbox commands, with the URL on the command line or in the environment
    fleet_prefix = "bt_secret_fleet_" + uuid.uuid4().hex[:6]
    h("sandbox", "new-dbs", "2", "--prefix", fleet_prefix)
    for n in (1, 2):
        server.drop_db(f"{fleet_prefix}_{n:03d}")
    h("sandbox", "replica", "status")
    h("sandbox", "status")
    variant("sandbox", "status", "--json")
    h("sandbox", "url")
    h("sandbox", "start")
    h("sandbox", "new-db", scratch_db)
    server.drop_db(scratch_db)
    assert "not running" in h("sandbox", "stop", outside=True).out

    # every command that connects, failing to: a wrong password, an unreachable port
    closed = closed_port()  # held until the test ends
    bad_urls = {
        "wrong password": role.url(dbname, password=wrong),
        "unreachable": role.url(dbname, port=int(closed.getsockname()[1])),
    }
    hints = {"wrong password": "password authentication failed", "unreachable": "check the host and port"}
    connecting = [["status"], ["plan"], ["plan", "--sql"], ["apply", "--yes"], ["apply", "--dry-run"]]
    connecting += [["rollback", "--yes"], ["baseline", "--to", "003", "--yes"], ["repair", "--yes"]]
    connecting += [["validate"], ["verify"], ["drift"], ["fingerprint"], ["detect"], ["stats"], ["locks"]]
    connecting += [["inspect", k] for k in kinds] + [["inspect", "table", "people"]]
    connecting += [["rollback", "--sql"], ["history"], ["erd", "--format", "dot"]]
    connecting += [["backup", "--out", "bk-failed"], ["backup", "diff", taken["file"]]]
    connecting += [["restore", taken["file"], "--yes"], ["adopt", "--from", "dbmate", "--yes"]]
    failures = [
        (what, args)
        for i, args in enumerate(connecting)
        for j, what in enumerate(bad_urls)
        if thorough or (i + j) % 2 == 0  # else each command fails one way, alternately
    ]
    calls = [(args, {"url": bad_urls[what], "expect": 2}) for what, args in failures]
    for (what, args), run in zip(failures, h.many(calls), strict=True):
        assert "cannot connect to" in run.err and hints[what] in run.err, (args, what, run.err)
    for what in bad_urls if thorough else ["wrong password"]:
        failing = h(
            "runbook",
            "run",
            "09",
            "--notebooks",
            str(notebooks),
            "--runs",
            "runs",
            url=bad_urls[what],
            expect=1,
        )
        assert "failed at cell 3 (OperationalError)" in failing.err
    assert not list(work.glob("bk-failed/*")), "a failed backup left a file"
    # the sandbox's backups, no question asked: the newest full one, the verified full one
    # and the schema-only one all stay
    assert "0 backup(s) removed, 3 kept" in h("backup", "--out", "bk", "prune", "--keep", "1").out
    assert len(list((work / "bk").glob("*.json"))) == 3 and Path(taken["file"]).exists()

    # new: files only, whatever the target
    assert "001_first.sql" in h("new", "first", migrations=work / "new-migrations").out
    h.no_stray_sandbox()
    missing = command_paths() - h.paths - EXEMPT.keys()
    assert not missing, f"commands never run with a password URL: {sorted(missing)}"
    assert not list(h.tmp.iterdir()), "a temporary passfile was left behind"
    files = scan_files([work], secrets)
    assert not leaks(log.read_bytes()[log_start:].decode("utf-8", errors="replace"), secrets), "server log"
    rows = scan_tables(server, dbname, secrets) + scan_tables(server, restore_db, secrets)
    assert rows > 10
    figures.add("secrets: CLI runs checked (subprocess)", len(h.runs))
    figures.add("secrets: failing connections checked", len(failures))
    figures.add("secrets: files scanned", files)
    figures.add("secrets: tracking and event rows scanned", rows)
    figures.add("secrets: password x source cases", 1)


def test_every_cli_command_is_covered(figures: Figures) -> None:
    """The command list comes from the click group: a new command fails the test above
    until it is run there (or exempted here with a reason)."""
    paths = command_paths()
    assert ("status",) in paths and ("inspect", "tables") in paths and ("backup", "verify") in paths
    assert EXEMPT.keys() <= paths, "an exemption names a command that no longer exists"
    figures.add("secrets: CLI commands checked", len(paths - EXEMPT.keys()))


# -- passwords typed into the URL as they are ---------------------------------------------------
USERINFO = "postgresql://{user}:{pw}@127.0.0.1:{port}/{db}"
QUERY = "postgresql://{user}@127.0.0.1:{port}/{db}?password={pw}"
CONNINFO = "host=127.0.0.1 port={port} user={user} dbname={db} password={pw}"
ENCODE = "write the password percent-encoded (@ as %40, / as %2F, % as %25, & as %26, a space as %20)"
# (id, password, how it is written, exit code, what the error line says). Every piece of
# every password is distinctive, so that a fragment of one cannot hide in a message.
SLASH = "the password holds an unencoded '/', so the rest was read as the database name"
AT = "the user name or password holds an unencoded '@', so the rest was read as the host"
TYPED = [
    ("slash-userinfo", "Kx7qLm/Vb9wRt+Zr==", USERINFO, 2, f"{SLASH} (a database name holding '@' must "),
    ("slash-after-digits", "9317/Vb9wRtZr", USERINFO, 2, f"{SLASH} (a database name holding '@'"),
    ("at-userinfo", "Tp4zQa@Wm8nYe", USERINFO, 2, f"{AT}; {ENCODE}"),
    (
        "at-user-and-password",
        "Pq3wEr@Ol9iUy",
        "postgresql://{user}@srvname:{pw}@127.0.0.1:{port}/{db}",
        2,
        AT,
    ),
    ("space-userinfo", "Hd3kJf6p Qz2wXc", USERINFO, 2, 'unexpected spaces found in "***"'),
    ("percent-userinfo", "Rw2x%Gq5vTy", USERINFO, 2, 'invalid percent-encoded token: "***"'),
    ("ampersand-query", "Qe5rWs&Yt6uIo", QUERY, 2, 'separator "=" in URI query parameter: "***"'),
    ("trailing-ampersand-query", "Lp0oKi9u&", QUERY, 2, "the password holds a character that ends it"),
    (
        "slash-unknown-scheme",
        "Zx1cVb/Nm2Qw3",
        "mysql://{user}:{pw}@127.0.0.1:{port}/{db}",
        2,
        "unknown scheme",
    ),
    ("space-conninfo", "Wd4fGh5j Lk6mNb", CONNINFO, 2, 'missing "=" after "***" in connection info string'),
    # what libpq reads as typed: it works, and the banner hides it
    ("colon-question-hash-userinfo", "Ns8c:Pz1y?Bd4f#Lu7h", USERINFO, 0, None),
    ("slash-at-hash-query", "Mv9b/Xc3n@Zk2j#Gh5t", QUERY, 0, None),
    ("at-slash-conninfo", "Gh7j@Kl8/Mn9?Pq0w", CONNINFO, 0, None),
]


@pytest.mark.parametrize("source", ["--db", "DATABASE_URL"])
@pytest.mark.parametrize(
    ("written", "password", "template", "code", "says"), TYPED, ids=[t[0] for t in TYPED]
)
def test_password_typed_as_is(
    written: str,
    password: str,
    template: str,
    code: int,
    says: str | None,
    source: str,
    server: Sandbox,
    db_url: str,
    make_role: Any,
    basic: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    """A password with '/', '@', ':', '?', '#', '%', '&' or a space, not percent-encoded:
    libpq reads it (the role logs in), or the one error line names the character and
    the fix; neither the password nor any piece of it shows, in the banner or the error."""
    role: Role = make_role(password)
    running = server.running()
    assert running is not None
    url = template.format(user=role.name, pw=password, port=running.port, db=db_url.rsplit("/", 1)[1])
    args = ["--migrations", str(basic), "status"]
    if source == "--db":
        args[:0] = ["--db", url]
    else:
        monkeypatch.setenv("DATABASE_URL", url)
    result = cli(*args)
    lines = result.err.splitlines()
    assert result.code == code, result.err
    if code == 0:
        assert "3 pending" in result.out
        assert lines[0].startswith("target: ") and "***" in lines[0] and role.name in lines[0], lines
    else:
        assert len(lines) == 1 and lines[0].startswith("error: malformed database URL "), lines
        assert says is not None and says in lines[0], lines[0]
        assert f"{role.name}" in lines[0] and "127.0.0.1" in lines[0] and f"from {source}:" in lines[0]
    shown = result.out + result.err
    for piece in {p for p in re.split(r"[\s@/:?&=#%]+", password) if p} | spellings(password):
        assert piece not in shown, (piece, shown)
    figures.add("secrets: passwords typed as is, checked")


# 02 applies three migrations one by one, 00 the rest; 01 backs up and drills a restore,
# 03 verifies, 04 reads the statistics, 05 rolls back to 026, 06 diagnoses (reads only), 07
# rolls out to a local fleet of its own (sandbox databases, which hold no password).
RUNBOOK_ORDER = ("02", "00", "01", "03", "04", "05", "06", "07")
RUNBOOK_PASSWORDS = ["distinctive", "special", "short"]


@pytest.mark.runbooks
@pytest.mark.parametrize("kind", RUNBOOK_PASSWORDS[: scale(1, len(RUNBOOK_PASSWORDS))])
def test_every_runbook_keeps_the_password_secret(
    kind: str, server: Sandbox, db_url: str, make_role: Any, tmp_path: Path, figures: Figures
) -> None:
    """The eight runbooks, one after the other on one database given by DATABASE_URL (all
    eight take about a minute here, so all run at the fast scale too)."""
    password = PASSWORDS[kind]
    role: Role = make_role(password)
    dbname = db_url.rsplit("/", 1)[1]
    work = tmp_path / "work"
    work.mkdir()
    secrets = spellings(password)
    h = Harness(server, work, "DATABASE_URL", role.url(dbname), secrets)
    runs, backups, notebooks = work / "runs", work / "backups", REPO / "notebooks"
    log = server_log(server)
    log_start = log.stat().st_size
    assert sorted(p.name[:2] for p in notebooks.glob("0*.ipynb")) == sorted(RUNBOOK_ORDER)
    for number in RUNBOOK_ORDER:
        source = next(notebooks.glob(f"{number}_*.ipynb"))
        declared = nbformat.read(str(source), 4).cells[1].source  # the parameters cell
        args = ["runbook", "run", number, "--notebooks", str(notebooks), "--runs", str(runs)]
        if "backup_dir =" in declared:
            args += ["-p", f"backup_dir={backups}"]
        r = h(*args, migrations=REPO / "migrations")
        assert r.out.startswith(f"{source.stem}: succeeded in "), r.out
        executed = next(runs.glob(f"*_{source.stem}.ipynb"))
        record = json.loads(executed.with_suffix(".json").read_text())
        assert record["outcome"] == "succeeded" and record["notebook"] == source.stem
        assert record["target"] == role.url(dbname).replace(quote(password, safe=""), "***")
        outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(str(executed), 4).cells])
        if number == "02":
            assert outputs.count("applied") >= 3 and "3 applied, 26 pending" in outputs
        if number == "00":
            assert "29 migrations: 29 applied" in outputs
        if number == "03":  # the verification ran on the 29 migrations
            assert "verify: OK, all" in outputs and "all 0 object" not in outputs
            assert nbformat.read(str(executed), 4).metadata["papermill"]["parameters"] == {}
        if number == "05":
            assert "29 migrations: 26 applied, 3 pending" in outputs
    listed = json.loads(h("runbook", "list", "--runs", str(runs), "--json").out)
    assert [run["notebook"][:2] for run in listed["runs"]] == list(reversed(RUNBOOK_ORDER))
    kept = sorted(p.suffix for p in runs.iterdir() if not p.name.endswith(".kernel.log"))
    assert kept == sorted([".html", ".ipynb", ".json"] * len(RUNBOOK_ORDER))
    # the kernels' own stderr (kept beside each run, masked) is scanned with the rest below
    assert all(p.suffix != ".log" or p.name.endswith(".kernel.log") for p in runs.iterdir())
    files = scan_files([work], secrets)
    assert not leaks(log.read_bytes()[log_start:].decode("utf-8", errors="replace"), secrets)
    rows = scan_tables(server, dbname, secrets)
    assert rows >= 29 * 2  # a row per migration and the events of the apply and rollback runs
    figures.add("secrets: notebooks run", len(RUNBOOK_ORDER))
    figures.add("secrets: files scanned", files)
    figures.add("secrets: tracking and event rows scanned", rows)
