"""Bad input: one clear line naming the problem and the fix, the right exit code, and the
database, the migrations and every other file exactly as they were.

Each case starts from a database where migration 001 is already applied (some cases
apply more), so that "unchanged" means something: the schema fingerprint with row
counts, the tracking rows, the event count and the server's list of databases are
compared before and after, and so is every byte, mode and link of the test's directory
(the migrations, backups, notebooks, runs: the command runs from that directory, so a
default path that writes anything shows up too).

We run as root, where chmod 000 hides nothing: the unreadable cases are the ones that
fail for root too (a directory named like a migration, a dangling link, a link loop, a
FIFO), and the BILANTOOLS_HOME that cannot be written is a regular file or a path in
/proc, not a directory without the write bit.

The second table holds input that looks wrong but is not (CRLF, CR, a BOM, a symbolic
link to a real file, directives in capitals): no error, and nothing changed either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.fingerprint import fingerprint
from bilantools.db.lock import LOCK_KEYS
from bilantools.source.headers import DURATION_HINT
from tests.conftest import snapshot
from tests.faults.conftest import Figures

pytestmark = pytest.mark.pg15

# Passwords used by the cases: they must never appear in any output.
PASSWORDS = (
    "hunter2-Secret",
    "hunter2 Secret",
    "hunter2&Secret",
    "&Secret",
    "se cret'pw",
    "se cret",
    "pct%2Fsecret",
    "pct%252Fsecret",
)


@dataclass
class Env:
    """What a setup may touch: the migrations directory, the test directory, the database."""

    dir: Path
    tmp: Path
    db_url: str


Setup = Callable[[Env], None]


def nothing(_: Env) -> None:
    pass


def write(name: str, text: str | bytes) -> Setup:
    def setup(env: Env) -> None:
        path = env.dir / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return setup


def prepend(name: str, line: str) -> Setup:
    def setup(env: Env) -> None:
        path = env.dir / name
        path.write_text(line + path.read_text())

    return setup


def remove(*names: str) -> Setup:
    def setup(env: Env) -> None:
        for name in names:
            (env.dir / name).unlink()

    return setup


def both(*setups: Setup) -> Setup:
    def setup(env: Env) -> None:
        for s in setups:
            s(env)

    return setup


def applied_to(version: str) -> Setup:
    def setup(env: Env) -> None:
        commands.apply(
            target=env.db_url, project=env.dir, options=commands.RunOptions(to=version, backup=False)
        )

    return setup


def empty_dir(env: Env) -> None:
    for path in env.dir.iterdir():
        path.unlink()


def only_readme(env: Env) -> None:
    empty_dir(env)
    (env.dir / "README.md").write_text("# migrations go here\n")


def edit_applied(env: Env) -> None:
    path = env.dir / "001_create_people.sql"
    path.write_text(path.read_text() + "-- edited after apply\n")


def rename_dir(env: Env) -> None:
    env.dir.rename(env.tmp / "migrations-elsewhere")


def make_dir(name: str) -> Setup:
    return lambda env: (env.dir / name).mkdir()


def symlink(name: str, to: str) -> Setup:
    return lambda env: (env.dir / name).symlink_to(to)


def fifo(name: str) -> Setup:
    return lambda env: os.mkfifo(env.dir / name)


def tmp_file(name: str, text: str = "not what was expected\n") -> Setup:
    def setup(env: Env) -> None:
        path = env.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return setup


def real_backup(env: Env) -> None:
    """A real backup of the database as it is (001 applied) in tmp/backups, as backup.dump."""
    taken = commands.backup(target=env.db_url, out=env.tmp / "backups")
    taken.file.rename(env.tmp / "backups" / "backup.dump")
    taken.sidecar.rename(env.tmp / "backups" / "backup.dump.json")


def corrupt_backup(env: Env) -> None:
    real_backup(env)
    path = env.tmp / "backups" / "backup.dump"
    path.write_bytes(path.read_bytes()[:-100])


def junk_with_sidecar(env: Env) -> None:
    real_backup(env)
    (env.tmp / "backups" / "backup.dump.json").write_text("{ not json")


def notebooks(env: Env) -> None:
    (env.tmp / "notebooks").mkdir()
    (env.tmp / "notebooks" / "00_quickstart.ipynb").write_text('{"cells": []}')


@dataclass(frozen=True)
class Case:
    id: str
    category: str  # directories, files, URLs, flags, environment
    args: list[str]
    code: int
    fragment: str | tuple[str, ...]  # every part must be in the error line
    setup: Setup = nothing
    env: dict[str, str] = field(default_factory=dict)
    db: bool = True  # add --db (unless the case passes DATABASE_URL or its own --db)


DURATION = f"is not a duration; {DURATION_HINT}"
LOCK_TIMEOUT_HEADER = f"'-- lock-timeout: soon' {DURATION}"
STATEMENT_TIMEOUT_HEADER = f"'-- statement-timeout: 1.5s' {DURATION}"
NO_ROLLBACK = "no rollback script for 001_create_people: add 001_create_people_rollback.sql (nothing was"
URL_HINT = "expected postgresql://user:***@host:5432/dbname"

D, F, U, FL, E = "directories", "files", "URLs", "flags", "environment"

CASES: list[Case] = [
    # -- directories ---------------------------------------------------------------------
    Case(
        "missing-dir",
        D,
        ["--migrations", "{tmp}/nope", "status"],
        2,
        "migrations directory {tmp}/nope does not exist; pass --migrations DIR",
    ),
    Case(
        "default-dir-missing",
        D,
        ["status"],
        2,
        "migrations directory migrations does not exist; pass --migrations DIR (default ./migrations)",
        setup=rename_dir,
    ),
    Case(
        "dir-is-a-file",
        D,
        ["--migrations", "{dir}/001_create_people.sql", "apply", "--yes"],
        2,
        "001_create_people.sql is not a directory; pass --migrations DIR",
    ),
    Case(
        "empty-dir",
        D,
        ["apply", "--yes"],
        2,
        ("no migrations in", "add migrations or pass --migrations DIR"),
        setup=empty_dir,
    ),
    Case("no-sql-files", D, ["status"], 2, "it has no NNN_slug.sql file; add migrations", setup=only_readme),
    Case(
        "check-missing-dir",
        D,
        ["--migrations", "{tmp}/nope", "check"],
        2,
        "{tmp}/nope does not exist; pass --migrations DIR",
    ),
    Case(
        "directory-named-sql",
        D,
        ["apply", "--yes"],
        2,
        "004_more.sql is a directory, not a migration file; move it out of",
        setup=make_dir("004_more.sql"),
    ),
    Case(
        "symlink-loop",
        D,
        ["apply", "--yes"],
        2,
        "004_loop.sql is a symbolic link loop; fix or remove the link",
        setup=symlink("004_loop.sql", "004_loop.sql"),
    ),
    Case(
        "dangling-symlink",
        D,
        ["apply", "--yes"],
        2,
        "004_gone.sql is a symbolic link to /nonexistent/004_gone.sql, which does not exist; fix or remove",
        setup=symlink("004_gone.sql", "/nonexistent/004_gone.sql"),
    ),
    Case(
        "fifo-named-sql",
        D,
        ["apply", "--yes"],
        2,
        "004_pipe.sql is not a regular file; move it out of",
        setup=fifo("004_pipe.sql"),
    ),
    # -- files ---------------------------------------------------------------------------
    Case(
        "bad-file-name",
        F,
        ["apply", "--yes"],
        2,
        "does not match NNN_slug.sql; rename it",
        setup=write("4_add-thing.sql.bak.sql", "SELECT 1;"),
    ),
    Case(
        "bad-file-name-2",
        F,
        ["apply", "--yes"],
        2,
        "'add_thing.sql' does not match",
        setup=write("add_thing.sql", "SELECT 1;"),
    ),
    Case(
        "upper-case-extension",
        F,
        ["apply", "--yes"],
        2,
        "migration file name '004_more.SQL' does not match NNN_slug.sql; rename it",
        setup=write("004_more.SQL", "SELECT 1;"),
    ),
    Case(
        "hidden-sql-file",
        F,
        ["apply", "--yes"],
        2,
        "migration file name '.004_more.sql' does not match NNN_slug.sql; rename it",
        setup=write(".004_more.sql", "SELECT 1;"),
    ),
    Case(
        "non-ascii-version",
        F,
        ["apply", "--yes"],
        2,
        "'\uff10\uff10\uff14_wide.sql' does not match NNN_slug.sql; rename it",
        setup=write("\uff10\uff10\uff14_wide.sql", "SELECT 1;"),
    ),
    Case(
        "duplicate-version",
        F,
        ["apply", "--yes"],
        2,
        "two migrations share version 002: 002_add_email.sql and 002_other.sql; renumber one of them",
        setup=write("002_other.sql", "SELECT 1;"),
    ),
    Case(
        "same-number-other-padding",
        F,
        ["apply", "--yes"],
        2,
        "two migrations share version 001: 001_create_people.sql and 1_people_again.sql; renumber",
        setup=write("1_people_again.sql", "SELECT 1;"),
    ),
    Case(
        "orphan-rollback",
        F,
        ["apply", "--yes"],
        2,
        "rollback 009_ghost_rollback.sql has no migration 009_ghost.sql; add the migration or remove it",
        setup=write("009_ghost_rollback.sql", "SELECT 1;"),
    ),
    Case(
        "mismatched-rollback",
        F,
        ["apply", "--yes"],
        2,
        "rollback 002_other_rollback.sql does not match migration 002_add_email.sql; rename it "
        "002_add_email_rollback.sql",
        setup=write("002_other_rollback.sql", "SELECT 1;"),
    ),
    Case(
        "non-utf8",
        F,
        ["apply", "--yes"],
        2,
        "004_latin1.sql is not UTF-8 (byte 0xc9 at offset 35); save the file as UTF-8",
        setup=write("004_latin1.sql", b"INSERT INTO people (name) VALUES ('\xc9milie');"),
    ),
    Case(
        "non-utf8-rollback",
        F,
        ["rollback", "--yes"],
        2,
        "001_create_people_rollback.sql is not UTF-8 (byte 0xe9 at offset 6); save the file as UTF-8",
        setup=write("001_create_people_rollback.sql", b"-- Caf\xe9\nDROP TABLE IF EXISTS people;\n"),
    ),
    Case(
        "empty-file",
        F,
        ["apply", "--yes"],
        2,
        "004_empty.sql contains no SQL; write its SQL or remove",
        setup=write("004_empty.sql", "\n\n"),
    ),
    Case(
        "comments-only-file",
        F,
        ["apply", "--yes"],
        2,
        "004_todo.sql contains no SQL",
        setup=write("004_todo.sql", "-- depends: 001\n-- TODO: write this\n"),
    ),
    Case(
        "unknown-dependency",
        F,
        ["apply", "--yes"],
        2,
        ("'-- depends: 042' names no migration in", "fix the '-- depends:' line"),
        setup=write("004_x.sql", "-- depends: 042\nSELECT 1;"),
    ),
    Case(
        "self-dependency",
        F,
        ["apply", "--yes"],
        2,
        "004_x.sql depends on itself; fix the '-- depends:' line",
        setup=write("004_x.sql", "-- depends: 004\nSELECT 1;"),
    ),
    Case(
        "dependency-cycle",
        F,
        ["apply", "--yes"],
        2,
        ("dependency cycle", "fix the '-- depends:' lines"),
        setup=both(
            write("004_x.sql", "-- depends: 005\nSELECT 1;"), write("005_y.sql", "-- depends: 004\nSELECT 1;")
        ),
    ),
    Case(
        "bad-depends-value",
        F,
        ["apply", "--yes"],
        2,
        "004_x.sql:1: '-- depends:' names 'first', which is not a version number; list versions",
        setup=write("004_x.sql", "-- depends: first\nSELECT 1;"),
    ),
    Case(
        "bad-transaction-header",
        F,
        ["apply", "--yes"],
        2,
        "004_x.sql:2: '-- transaction: no' is not understood; write '-- transaction: off'",
        setup=write("004_x.sql", "-- Adds x.\n-- transaction: no\nSELECT 1;"),
    ),
    Case(
        "lock-timeout-header",
        F,
        ["apply", "--yes"],
        2,
        f"004_x.sql:2: {LOCK_TIMEOUT_HEADER}",
        setup=write("004_x.sql", "-- Adds x.\n-- lock-timeout: soon\nSELECT 1;"),
    ),
    Case(
        "statement-timeout-header",
        F,
        ["apply", "--yes"],
        2,
        f"004_x.sql:1: {STATEMENT_TIMEOUT_HEADER}",
        setup=write("004_x.sql", "-- statement-timeout: 1.5s\nSELECT 1;"),
    ),
    Case(
        "lock-timeout-header-too-long",
        F,
        ["apply", "--yes"],
        2,
        "004_x.sql:1: '-- lock-timeout: 30d' is longer than PostgreSQL allows (about 24 days); write a",
        setup=write("004_x.sql", "-- lock-timeout: 30d\nSELECT 1;"),
    ),
    Case(
        "lock-timeout-header-in-rollback",
        F,
        ["rollback", "--yes"],
        2,
        f"001_create_people_rollback.sql:1: {LOCK_TIMEOUT_HEADER}",
        setup=prepend("001_create_people_rollback.sql", "-- lock-timeout: soon\n"),
    ),
    Case(
        "statement-timeout-header-in-rollback",
        F,
        ["rollback", "--yes"],
        2,
        f"001_create_people_rollback.sql:2: {STATEMENT_TIMEOUT_HEADER}",
        setup=prepend("001_create_people_rollback.sql", "-- Drops people.\n-- statement-timeout: 1.5s\n"),
    ),
    Case(
        "syntax-error",
        F,
        ["apply", "--yes"],
        2,
        '004_typo.sql:2:1: syntax error: syntax error at or near "CREAT"',
        setup=write("004_typo.sql", "CREATE TABLE t (id int);\nCREAT INDEX i ON t (id);\n"),
    ),
    Case(
        "transaction-control",
        F,
        ["apply", "--yes"],
        2,
        "004_tx.sql:1: 'BEGIN' controls the transaction",
        setup=write("004_tx.sql", "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n"),
    ),
    Case(
        "needs-transaction-off",
        F,
        ["apply", "--yes"],
        2,
        "cannot run inside a transaction; add the header line '-- transaction: off'",
        setup=write("004_idx.sql", "CREATE INDEX CONCURRENTLY i ON people (name);\n"),
    ),
    Case(
        "nul-byte",
        F,
        ["apply", "--yes"],
        2,
        "004_nul.sql:2:10: 004_nul.sql contains a NUL byte at line 2: everything after it would be cut off "
        "without a word; remove it",
        setup=write("004_nul.sql", b"CREATE TABLE a (id int);\nSELECT 1;\x00\nDROP TABLE people;\n"),
    ),
    Case(
        "version-60-digits",
        F,
        ["apply", "--yes"],
        2,
        f"{'4' * 60}_big.sql has a version of 60 digits; the tracking table stores versions of at most 50 "
        "characters; renumber the migration (and its rollback) with at most 50 digits",
        setup=write(f"{'4' * 60}_big.sql", "CREATE TABLE big (id int);\n"),
    ),
    Case(
        "copy-from-stdin",
        F,
        ["apply", "--yes"],
        2,
        "refusing to apply: {dir}/004_load.sql:2: COPY ... FROM STDIN waits for rows from the client, and a "
        "migration file has no client-side data stream; put the rows in the migration as INSERT ... VALUES",
        setup=write("004_load.sql", "CREATE TABLE t (id int);\nCOPY t FROM STDIN;\n"),
    ),
    Case(
        "copy-to-stdout",
        F,
        ["apply", "--yes"],
        2,
        "{dir}/004_dump.sql:1: COPY ... TO STDOUT sends rows to the client, and a migration file has no "
        "client-side data stream; remove it, or COPY TO a file on the database server",
        setup=write("004_dump.sql", "COPY (SELECT * FROM people) TO STDOUT;\n"),
    ),
    Case(
        "tracking-delete",
        F,
        ["apply", "--yes"],
        2,
        "{dir}/004_reset.sql:2: DELETE writes to the engine's tracking table schema_migrations; remove the "
        "statement; the engine keeps the history",
        setup=write(
            "004_reset.sql", "-- start again\nDELETE FROM schema_migrations WHERE version = '001';\n"
        ),
    ),
    Case(
        "tracking-replace-function",
        F,
        ["apply", "--yes"],
        2,
        "{dir}/004_mine.sql:1: CREATE OR REPLACE FUNCTION redefines the engine's tracking function "
        "record_migration()",
        setup=write(
            "004_mine.sql",
            "CREATE OR REPLACE FUNCTION record_migration(p_version varchar, p_description text,"
            " p_checksum varchar DEFAULT NULL, p_applied_by text DEFAULT current_user,"
            " p_execution_time_ms integer DEFAULT NULL) RETURNS void LANGUAGE sql AS 'SELECT 1';\n",
        ),
    ),
    Case(
        "tracking-drop-table",
        F,
        ["apply", "--yes"],
        2,
        "{dir}/004_drop.sql:1: DROP TABLE drops the engine's tracking table schema_migrations",
        setup=write("004_drop.sql", "DROP TABLE IF EXISTS public.schema_migrations CASCADE;\n"),
    ),
    Case(
        "tracking-alter-table",
        F,
        ["apply", "--yes"],
        2,
        "{dir}/004_dirty.sql:1: ALTER TABLE changes the engine's tracking table schema_migrations",
        setup=write(
            "004_dirty.sql",
            "ALTER TABLE schema_migrations ADD COLUMN dirty boolean NOT NULL DEFAULT false;\n",
        ),
    ),
    Case(
        "rollback-tracking-drop",
        F,
        ["rollback", "--yes"],
        2,
        "refusing to roll back: {dir}/001_create_people_rollback.sql:2: DROP TABLE drops the engine's "
        "tracking table schema_migrations; remove the statement; the engine keeps the history",
        setup=write(
            "001_create_people_rollback.sql", "DROP TABLE IF EXISTS people;\nDROP TABLE schema_migrations;\n"
        ),
    ),
    Case(
        "rollback-copy-to-stdout",
        F,
        ["rollback", "--yes"],
        2,
        "{dir}/001_create_people_rollback.sql:1: COPY ... TO STDOUT sends rows to the client",
        setup=write(
            "001_create_people_rollback.sql", "COPY people TO STDOUT;\nDROP TABLE IF EXISTS people;\n"
        ),
    ),
    Case(
        "missing-rollback-script",
        F,
        ["rollback", "--yes"],
        2,
        NO_ROLLBACK,
        setup=remove("001_create_people_rollback.sql"),
    ),
    Case(
        "missing-rollback-script-deep",
        F,
        ["rollback", "--to", "0", "--yes"],
        2,
        NO_ROLLBACK,
        setup=both(applied_to("002"), remove("001_create_people_rollback.sql")),
    ),
    Case(
        "applied-file-missing",
        F,
        ["rollback", "--yes"],
        2,
        "migration(s) 003 are applied but their files are missing: restore them before rolling back",
        setup=both(applied_to("003"), remove("003_seed_people.sql", "003_seed_people_rollback.sql")),
    ),
    Case(
        "changed-after-apply",
        F,
        ["apply", "--yes"],
        2,
        "001 changed since they were applied (checksum differs)",
        setup=edit_applied,
    ),
    Case(
        "backup-verify-missing",
        F,
        ["backup", "verify", "{tmp}/backups/nope.dump"],
        2,
        "{tmp}/backups/nope.dump does not exist; pass a backup file ('bilantools backup list' shows them)",
    ),
    Case(
        "backup-verify-not-a-dump",
        F,
        ["backup", "verify", "{tmp}/notes.txt"],
        2,
        "{tmp}/notes.txt has no sidecar notes.txt.json",
        setup=tmp_file("notes.txt"),
    ),
    Case(
        "backup-verify-bad-sidecar",
        F,
        ["backup", "verify", "{tmp}/backups/backup.dump"],
        2,
        ("{tmp}/backups/backup.dump.json cannot be read", "restore it from where you keep backups"),
        setup=junk_with_sidecar,
    ),
    Case(
        "backup-diff-missing",
        F,
        ["backup", "diff", "{tmp}/backups/nope.dump"],
        2,
        "{tmp}/backups/nope.dump does not exist; pass a backup file",
    ),
    Case(
        "backup-diff-not-a-dump",
        F,
        ["backup", "diff", "{tmp}/notes.txt"],
        2,
        "{tmp}/notes.txt has no sidecar notes.txt.json",
        setup=tmp_file("notes.txt"),
    ),
    Case(
        "restore-missing",
        F,
        ["restore", "{tmp}/backups/nope.dump", "--yes"],
        2,
        "{tmp}/backups/nope.dump does not exist; pass a backup file",
    ),
    Case(
        "restore-not-a-dump",
        F,
        ["restore", "{tmp}/notes.txt", "--yes"],
        2,
        "{tmp}/notes.txt has no sidecar notes.txt.json",
        setup=tmp_file("notes.txt"),
    ),
    Case(
        "restore-corrupted",
        F,
        ["restore", "{tmp}/backups/backup.dump", "--yes"],
        2,
        "backup.dump does not match its recorded SHA-256 (truncated or corrupted): refusing to restore it",
        setup=corrupt_backup,
    ),
    Case(
        "restore-into-non-empty",
        F,
        ["restore", "{tmp}/backups/backup.dump", "--yes"],
        2,
        ("is not empty", "restore into an empty database, or pass --clean"),
        setup=real_backup,
    ),
    # -- URLs ----------------------------------------------------------------------------
    Case(
        "unreachable-host",
        U,
        ["--db", "postgresql://postgres@127.0.0.1:1/x", "status"],
        2,
        (
            "cannot connect to postgresql://postgres@127.0.0.1:1/x: Connection refused",
            "check the host and port",
        ),
    ),
    Case(
        "unknown-host",
        U,
        ["--db", "postgresql://postgres@no-such-host.invalid/x", "status"],
        2,
        "check the host and port",
    ),
    Case(
        "malformed-port",
        U,
        ["--db", "postgresql://u:hunter2-Secret@localhost:notaport/db", "status"],
        2,
        "malformed database URL postgresql://u:***@localhost:notaport/db from --db: port 'notaport' is not a",
    ),
    Case(
        "port-out-of-range",
        U,
        ["--db", "postgresql://postgres@127.0.0.1:99999/db", "status"],
        2,
        ("port '99999' is not a TCP port (1 to 65535)", URL_HINT),
    ),
    Case(
        "malformed-scheme",
        U,
        ["--db", "http://example.org/db", "status"],
        2,
        "malformed database URL http://example.org/db from --db: unknown scheme; expected postgresql://",
    ),
    Case("malformed-words", U, ["--db", "not a url", "status"], 2, ("malformed database URL", URL_HINT)),
    Case("empty-url", U, ["--db", "", "status"], 2, f"the database URL from --db is empty; {URL_HINT}"),
    Case("blank-url", U, ["--db", "   ", "status"], 2, "the database URL from --db is empty"),
    Case(
        "unknown-query-parameter",
        U,
        ["--db", "{db}?colour=blue", "status"],
        2,
        ('invalid URI query parameter: "colour"', URL_HINT),
    ),
    Case(
        "bad-percent-encoding",
        U,
        ["--db", "postgresql://u:%zz@127.0.0.1/db", "status"],
        2,
        ("malformed database URL postgresql://u:***@127.0.0.1/db", "invalid percent-encoded token"),
    ),
    Case(
        "unterminated-conninfo-quote",
        U,
        ["--db", "host=127.0.0.1 password='se cret' dbname='x", "status"],
        2,
        ("malformed database URL host=127.0.0.1 password=***", "unterminated quoted string"),
    ),
    Case(
        "missing-database",
        U,
        ["--db", "{server}/no_such_db", "status"],
        2,
        'database "no_such_db" does not exist; create the database first',
    ),
    Case(
        "no-password",
        U,
        ["--db", "postgresql://nobody@127.0.0.1:{port}/{dbname}", "status"],
        2,
        "no password supplied; put the password in the URL, in PGPASSWORD or in ~/.pgpass",
    ),
    Case(
        "wrong-password",
        U,
        ["--db", "postgresql://nobody:hunter2-Secret@127.0.0.1:{port}/{dbname}", "status"],
        2,
        (
            "cannot connect to postgresql://nobody:***@127.0.0.1:{port}/{dbname}",
            'password authentication failed for user "nobody"; check the user name and password',
        ),
    ),
    Case(
        "wrong-password-conninfo",
        U,
        ["--db", "host=127.0.0.1 port={port} user=nobody password='se cret\\'pw' dbname={dbname}", "status"],
        2,
        ("password=***", 'password authentication failed for user "nobody"'),
    ),
    Case(
        "raw-password-with-space",
        U,
        ["--db", "postgresql://nobody:hunter2 Secret@127.0.0.1:{port}/{dbname}", "status"],
        2,
        ("malformed database URL postgresql://nobody:***@127.0.0.1:{port}/{dbname}", "unexpected spaces"),
    ),
    Case(
        "conninfo-password-with-ampersand",
        U,
        ["--db", "host=127.0.0.1 port={port} user=nobody password=hunter2&Secret dbname={dbname}", "status"],
        2,
        ("user=nobody password=*** dbname=", 'password authentication failed for user "nobody"'),
    ),
    Case(
        "percent-encoded-password",
        U,
        ["--db", "postgresql://nobody:pct%252Fsecret@127.0.0.1:{port}/{dbname}", "status"],
        2,
        ("nobody:***@", 'password authentication failed for user "nobody"'),
    ),
    Case(
        "bad-sslmode",
        U,
        ["--db", "{db}?sslmode=sometimes", "status"],
        2,
        ('invalid sslmode value: "sometimes"', "check the URL"),
    ),
    Case(
        "ssl-required",
        U,
        ["--db", "{db}?sslmode=require", "status"],
        2,
        ("server does not support SSL, but SSL was required", "check the URL"),
    ),
    # -- flags ---------------------------------------------------------------------------
    Case(
        "unknown-to",
        FL,
        ["apply", "--to", "099", "--yes"],
        2,
        ("--to 099: no migration has version 099", "(versions 001..003); pass one of those versions"),
    ),
    Case(
        "unknown-rollback-to",
        FL,
        ["rollback", "--to", "77", "--yes"],
        2,
        "--to 77: no migration has version 77",
    ),
    Case("to-zero-apply", FL, ["apply", "--to", "0", "--yes"], 2, "--to 0: no migration has version 0"),
    Case("to-negative", FL, ["rollback", "--to", "-1", "--yes"], 2, "--to -1: no migration has version -1"),
    Case(
        "to-not-a-number", FL, ["plan", "--to", "latest"], 2, "--to latest: no migration has version latest"
    ),
    Case(
        "to-superscript-digit",
        FL,
        ["apply", "--to", "\u00b2", "--yes"],
        2,
        "--to \u00b2: no migration has version \u00b2",
    ),
    Case(
        "rollback-to-superscript-digit",
        FL,
        ["rollback", "--to", "\u00b2", "--yes"],
        2,
        "--to \u00b2: no migration has version \u00b2",
    ),
    Case(
        "to-and-step",
        FL,
        ["apply", "--to", "003", "--step", "1", "--yes"],
        2,
        "--to and --step cannot be used together; pass one of them",
    ),
    Case(
        "rollback-to-and-step",
        FL,
        ["rollback", "--to", "001", "--step", "1", "--yes"],
        2,
        "--to and --step cannot be used together",
    ),
    Case(
        "rollback-to-zero-and-step",
        FL,
        ["rollback", "--to", "0", "--step", "1", "--yes"],
        2,
        "--to and --step cannot be used together",
    ),
    Case(
        "step-zero",
        FL,
        ["apply", "--step", "0", "--yes"],
        2,
        "Invalid value for '--step': 0 is not in the range x>=1",
    ),
    Case("step-negative", FL, ["rollback", "--step", "-2", "--yes"], 2, "Invalid value for '--step'"),
    Case(
        "step-not-a-number",
        FL,
        ["plan", "--step", "two"],
        2,
        "Invalid value for '--step': 'two' is not a valid integer",
    ),
    Case(
        "lock-wait-negative",
        FL,
        ["apply", "--lock-wait", "-1", "--yes"],
        2,
        "Invalid value for '--lock-wait'",
    ),
    Case(
        "lock-wait-not-a-number",
        FL,
        ["rollback", "--lock-wait", "soon", "--yes"],
        2,
        "Invalid value for '--lock-wait': 'soon'",
    ),
    Case(
        "lock-timeout-not-a-duration",
        FL,
        ["apply", "--lock-timeout", "soon", "--yes"],
        2,
        ("'--lock-timeout'", "soon", DURATION),
    ),
    Case(
        "lock-timeout-negative",
        FL,
        ["apply", "--lock-timeout", "-1s", "--yes"],
        2,
        ("'--lock-timeout'", "-1s", DURATION),
    ),
    Case(
        "statement-timeout-fraction",
        FL,
        ["rollback", "--statement-timeout", "1.5s", "--yes"],
        2,
        ("'--statement-timeout'", "1.5s", DURATION),
    ),
    Case(
        "statement-timeout-unit",
        FL,
        ["apply", "--statement-timeout", "5 parsecs", "--yes"],
        2,
        ("'--statement-timeout'", "5 parsecs", DURATION),
    ),
    Case("baseline-without-to", FL, ["baseline", "--yes"], 2, "Missing option '--to'"),
    Case(
        "baseline-unknown-to",
        FL,
        ["baseline", "--to", "42", "--yes"],
        2,
        "--to 42: no migration has version 42 in {dir} (versions 001..003); pass one of those versions",
    ),
    Case("unknown-command", FL, ["migrate"], 2, "No such command 'migrate'"),
    Case("unknown-option", FL, ["apply", "--everything", "--yes"], 2, "No such option '--everything'"),
    Case("unknown-inspect-kind", FL, ["inspect", "tabels"], 2, "'tabels' is not one of 'tables', 'columns'"),
    Case(
        "backup-out-is-a-file",
        FL,
        ["backup", "--out", "{dir}/001_create_people.sql"],
        2,
        "backup directory {dir}/001_create_people.sql is not writable (File exists); pass --out DIR",
    ),
    Case(
        "backup-bad-format",
        FL,
        ["backup", "--format", "zip", "--out", "{tmp}/backups"],
        2,
        "Invalid value for '--format': 'zip' is not one of 'custom', 'plain', 'directory'",
    ),
    Case(
        "backup-prune-keep-zero",
        FL,
        ["backup", "--out", "{tmp}/backups", "prune", "--keep", "0"],
        2,
        "Invalid value for '--keep': 0 is not in the range x>=1",
    ),
    Case(
        "runbook-unknown",
        FL,
        ["runbook", "run", "99_nothing", "--notebooks", "{tmp}/notebooks", "--runs", "{tmp}/runs"],
        2,
        "runbook '99_nothing' matches no notebook in {tmp}/notebooks; choose one of: 00_quickstart",
        setup=notebooks,
    ),
    Case(
        "runbook-bad-parameter",
        FL,
        ["runbook", "run", "00", "-p", "to", "--notebooks", "{tmp}/notebooks", "--runs", "{tmp}/runs"],
        2,
        "parameter 'to' is not key=value; write e.g. -p to=017",
        setup=notebooks,
    ),
    Case(
        "runbook-secret-parameter",
        FL,
        [
            "runbook",
            "run",
            "00",
            "-p",
            "password=hunter2-Secret",
            "--notebooks",
            "{tmp}/notebooks",
            "--runs",
            "{tmp}/runs",
        ],
        2,
        "parameter 'password' looks like a connection or a secret",
        setup=notebooks,
    ),
    Case(
        "graph-output-in-missing-dir",
        FL,
        ["graph", "-o", "{tmp}/no-such-dir/graph.txt"],
        2,
        "{tmp}/no-such-dir",
    ),
    Case(
        "stats-plots-is-a-file",
        FL,
        ["stats", "--plots", "{dir}/001_create_people.sql"],
        2,
        "Invalid value for '--plots'",
    ),
    Case(
        "bad-pg-bin",
        FL,
        ["--pg-bin", "{dir}", "sandbox", "start"],
        2,
        "no postgres, pg_ctl, initdb there; pass the bin directory of a PostgreSQL server install",
    ),
    Case(
        "sandbox-bad-db-name",
        FL,
        ["sandbox", "new-db", "x; DROP DATABASE y"],
        2,
        "invalid database name 'x; DROP DATABASE y': use letters, digits and underscores",
    ),
    Case("sandbox-db-name-too-long", FL, ["sandbox", "new-db", "d" * 64], 2, "invalid database name 'dddd"),
    # -- environment ---------------------------------------------------------------------
    Case(
        "database-url-malformed",
        E,
        ["status"],
        2,
        "malformed database URL postgresql://u:***@h:x/db from DATABASE_URL: port 'x' is not a number",
        env={"DATABASE_URL": "postgresql://u:hunter2-Secret@h:x/db"},
    ),
    Case(
        "database-url-empty",
        E,
        ["status"],
        2,
        f"the database URL from DATABASE_URL is empty; {URL_HINT}",
        env={"DATABASE_URL": ""},
    ),
    Case(
        "database-url-unknown-scheme",
        E,
        ["status"],
        2,
        "malformed database URL mysql://app:***@db.example.org/bilan from DATABASE_URL: unknown scheme",
        env={"DATABASE_URL": "mysql://app:hunter2-Secret@db.example.org/bilan"},
    ),
    Case(
        "database-url-unreachable",
        E,
        ["status"],
        2,
        "cannot connect to postgresql://postgres@127.0.0.1:1/x: Connection refused",
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"},
    ),
    Case(
        "database-url-wrong-password",
        E,
        ["status"],
        2,
        'password authentication failed for user "nobody"; check the user name and password in --db or '
        "DATABASE_URL",
        env={"DATABASE_URL": "postgresql://nobody:hunter2-Secret@127.0.0.1:{port}/{dbname}"},
    ),
    Case(
        "pg-bin-env-nowhere",
        E,
        ["status"],
        2,
        "{tmp}/nowhere: no postgres, pg_ctl, initdb there; pass the bin directory",
        env={"BILANTOOLS_PG_BIN": "{tmp}/nowhere", "BILANTOOLS_HOME": "{tmp}/home"},
        db=False,
    ),
    Case(
        "pg-bin-env-is-a-file",
        E,
        ["sandbox", "start"],
        2,
        "no postgres, pg_ctl, initdb there",
        setup=tmp_file("pg-bin"),
        env={"BILANTOOLS_PG_BIN": "{tmp}/pg-bin", "BILANTOOLS_HOME": "{tmp}/home"},
    ),
    Case(
        "home-is-a-file",
        E,
        ["status"],
        2,
        ("BILANTOOLS_HOME", "{tmp}/home-file"),
        setup=tmp_file("home-file"),
        env={"BILANTOOLS_HOME": "{tmp}/home-file"},
        db=False,
    ),
    Case(
        "home-unwritable",
        E,
        ["sandbox", "new-db"],
        2,
        ("BILANTOOLS_HOME", "/proc/bilantools-home"),
        env={"BILANTOOLS_HOME": "/proc/bilantools-home"},
    ),
]

assert len(CASES) >= 50 and len({c.id for c in CASES}) == len(CASES)


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under `root`: its type, mode, and bytes (files) or target (links)."""
    entries: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            kind = stat.S_IFMT(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                content: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = None
            entries[str(path.relative_to(root))] = (kind, stat.S_IMODE(info.st_mode), content)
    return entries


def databases(server_url: str) -> list[str]:
    with psycopg.connect(server_url + "/postgres", autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()]


def state(conn: psycopg.Connection, server_url: str) -> tuple[object, ...]:
    return fingerprint(conn).digest, snapshot(conn), databases(server_url)


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def run_case(
    case_args: list[str],
    case_env: dict[str, str],
    with_db: bool,
    env: Env,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, dict[str, str]]:
    server = env.db_url.rsplit("/", 1)[0]
    values = {
        "server": server,
        "db": env.db_url,
        "dbname": env.db_url.rsplit("/", 1)[1],
        "port": server.rsplit(":", 1)[1],
        "dir": str(env.dir),
        "tmp": str(env.tmp),
    }
    argv = [fill(a, values) for a in case_args]
    for key, value in case_env.items():
        monkeypatch.setenv(key, fill(value, values))
    if with_db and "--db" not in argv and "DATABASE_URL" not in case_env:
        argv = ["--db", env.db_url, *argv]
    if "--migrations" not in argv and (env.dir).exists():
        argv = ["--migrations", str(env.dir), *argv]
    monkeypatch.chdir(env.tmp)  # a default path (./migrations, ./backups, ./runs) lands here
    return cli(*argv), values


def test_cases_cover_every_category() -> None:
    counts = {c: sum(1 for case in CASES if case.category == c) for c in (D, F, U, FL, E)}
    assert all(n >= 5 for n in counts.values()), counts
    assert sum(counts.values()) == len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case,
    cli: Any,
    db_url: str,
    basic: Path,
    conn: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    env = Env(basic, tmp_path, db_url)
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001", backup=False))
    case.setup(env)
    server = db_url.rsplit("/", 1)[0]
    before_db, before_files = state(conn, server), tree(tmp_path)
    assert conn.execute("SELECT min(version) FROM schema_migrations WHERE success").fetchone() == ("001",)

    result, values = run_case(case.args, case.env, case.db, env, cli, monkeypatch)

    assert result.code == case.code, result.err
    lines = result.err.splitlines()
    assert lines and lines[-1].startswith("error: "), result.err
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]], result.err  # one error line, and it is the last
    assert all(line.startswith(("target: ", "sandbox: ")) for line in lines[:-1]), result.err
    fragments = (case.fragment,) if isinstance(case.fragment, str) else case.fragment
    for fragment in fragments:
        assert fill(fragment, values) in lines[-1], lines[-1]
    assert result.out == "", result.out
    for password in PASSWORDS:
        assert password not in result.err + result.out
    assert state(conn, server) == before_db
    assert tree(tmp_path) == before_files
    figures.add(f"bad input: {case.category}")
    figures.add("bad input: cases")


JSON_CASES: list[Case] = [
    Case(
        "json-status-missing-dir", D, ["--migrations", "{tmp}/nope", "status", "--json"], 2, "does not exist"
    ),
    Case(
        "json-apply-bad-header",
        F,
        ["apply", "--json", "--yes"],
        2,
        LOCK_TIMEOUT_HEADER,
        setup=write("004_x.sql", "-- lock-timeout: soon\nSELECT 1;"),
    ),
    Case("json-plan-unknown-to", FL, ["plan", "--to", "099", "--json"], 2, "--to 099: no migration"),
    Case(
        "json-rollback-missing-script",
        F,
        ["rollback", "--json", "--yes"],
        2,
        "no rollback script for 001",
        setup=remove("001_create_people_rollback.sql"),
    ),
    Case("json-lock-timeout-flag", FL, ["apply", "--json", "--lock-timeout", "soon", "--yes"], 2, DURATION),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c.id for c in JSON_CASES])
def test_bad_input_json(
    case: Case,
    cli: Any,
    db_url: str,
    basic: Path,
    conn: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    """With --json, stdout holds nothing or one JSON object that says the run failed."""
    env = Env(basic, tmp_path, db_url)
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001", backup=False))
    case.setup(env)
    server = db_url.rsplit("/", 1)[0]
    before_db, before_files = state(conn, server), tree(tmp_path)
    result, values = run_case(case.args, case.env, case.db, env, cli, monkeypatch)
    assert result.code == case.code, result.err
    last = result.err.splitlines()[-1]
    assert last.startswith("error: ") and fill(str(case.fragment), values) in last, result.err
    if result.out:
        payload = json.loads(result.out)
        assert payload["ok"] is False and payload["error"] in last
    assert state(conn, server) == before_db
    assert tree(tmp_path) == before_files
    figures.add(f"bad input: {case.category}")
    figures.add("bad input: cases")


def crlf(name: str) -> Setup:
    def setup(env: Env) -> None:
        path = env.dir / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))

    return setup


def cr_only(name: str) -> Setup:
    def setup(env: Env) -> None:
        path = env.dir / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))

    return setup


def bom(name: str) -> Setup:
    def setup(env: Env) -> None:
        path = env.dir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    return setup


def linked(name: str) -> Setup:
    """`name` becomes a symbolic link to the same file kept elsewhere."""

    def setup(env: Env) -> None:
        keep = env.tmp / "elsewhere"
        keep.mkdir(exist_ok=True)
        shutil.move(env.dir / name, keep / name)
        (env.dir / name).symlink_to(keep / name)

    return setup


ACCEPTED: list[tuple[str, Setup, list[str], str]] = [
    ("crlf-applied-file", crlf("001_create_people.sql"), ["validate"], "valid: no problems found"),
    ("cr-only-applied-file", cr_only("001_create_people.sql"), ["validate"], "valid: no problems found"),
    ("bom-applied-file", bom("001_create_people.sql"), ["status"], "1 applied, 2 pending"),
    (
        "bom-and-crlf-everywhere",
        both(*(f(n) for n in ("001_create_people.sql", "003_seed_people.sql") for f in (bom, crlf))),
        ["validate"],
        "valid: no problems found",
    ),
    (
        "bom-twice-applied-file",
        both(bom("001_create_people.sql"), bom("001_create_people.sql")),
        ["status"],
        "1 applied, 2 pending",
    ),
    (
        "editor-lock-link",
        symlink(".#002_add_email.sql", "root@host.example.1234:1700000000"),
        ["plan"],
        "2 migration(s) to apply",
    ),
    ("symlink-to-applied-file", linked("001_create_people.sql"), ["status"], "1 applied, 2 pending"),
    ("symlink-to-pending-file", linked("002_add_email.sql"), ["plan"], "2 migration(s) to apply"),
    (
        "directives-in-capitals",
        write("004_x.sql", "--  DEPENDS :  002 ,003\n-- Transaction: OFF\n-- LOCK-TIMEOUT: 10S\nSELECT 1;\n"),
        ["plan", "--json"],
        '"transaction": false, "depends": ["002", "003"]',
    ),
    (
        "directive-after-sql-ignored",
        write("004_x.sql", "SELECT 1;\n-- transaction: maybe\n-- lock-timeout: soon\n"),
        ["plan"],
        "3 migration(s) to apply",
    ),
]


@pytest.mark.parametrize(
    ("setup", "args", "expected"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_accepted_look_alikes(
    setup: Setup,
    args: list[str],
    expected: str,
    cli: Any,
    db_url: str,
    basic: Path,
    conn: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    """Input that looks wrong but is not: no error, the expected output, nothing changed."""
    env = Env(basic, tmp_path, db_url)
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001", backup=False))
    setup(env)
    server = db_url.rsplit("/", 1)[0]
    before_db, before_files = state(conn, server), tree(tmp_path)
    result, _ = run_case(args, {}, True, env, cli, monkeypatch)
    assert result.code == 0, result.err
    assert "error" not in result.err, result.err
    assert expected in result.out, result.out
    assert state(conn, server) == before_db
    assert tree(tmp_path) == before_files
    figures.add("bad input: accepted look-alikes")


def test_chmod_000(
    cli: Any, db_url: str, basic: Path, conn: psycopg.Connection, tmp_path: Path, figures: Figures
) -> None:
    """A file without read permission: root reads it like any other (the test machine runs
    as root); anyone else gets the one-line error. Nothing changes either way."""
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001", backup=False))
    (basic / "002_add_email.sql").chmod(0)
    server = db_url.rsplit("/", 1)[0]
    before_db, before_files = state(conn, server), tree(tmp_path)
    r = cli("--db", db_url, "--migrations", str(basic), "plan")
    if os.geteuid() == 0:
        assert r.code == 0 and "2 migration(s) to apply" in r.out, r.err
    else:
        assert r.code == 2 and r.out == ""
        assert r.err.splitlines()[-1].startswith(
            "error: 002_add_email.sql cannot be read (Permission denied)"
        )
    assert state(conn, server) == before_db
    assert tree(tmp_path) == before_files
    figures.add("bad input: accepted look-alikes" if os.geteuid() == 0 else "bad input: files")


def test_lock_held_by_another_runner(
    cli: Any, db_url: str, basic: Path, conn: psycopg.Connection, figures: Figures
) -> None:
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001", backup=False))
    before = snapshot(conn)
    with psycopg.connect(db_url, autocommit=True, application_name="bilantools apply elsewhere") as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
        r = cli("--db", db_url, "--migrations", str(basic), "apply", "--lock-wait", "0.2", "--yes")
    assert r.code == 2 and r.out == ""
    last = r.err.splitlines()[-1]
    assert last.startswith("error: ") and "another run holds the migration lock" in last
    assert "'bilantools apply elsewhere'" in last
    assert snapshot(conn) == before
    figures.add("bad input: environment")
    figures.add("bad input: cases")
