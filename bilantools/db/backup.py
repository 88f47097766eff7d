"""Backups that can be proven: pg_dump with a sidecar, verification by restore, restore.

A backup is ``<dir>/<database>_<UTC time>_<full|schema>.<dump|sql|dir>`` (mode 0600) and
its sidecar ``<file>.json``: server and pg_dump versions, size, SHA-256, duration, the
migration version, the schema fingerprint with its per-object details, and for a full
backup the row count of every table. The fingerprint and the counts are read inside the
very snapshot pg_dump dumps (``pg_export_snapshot`` + ``--snapshot``), so they describe
exactly what is in the file even while the database is being written to.

`verify` restores into a fresh sandbox database and compares with the sidecar; `diff`
compares the sidecar with a live database. A failed dump leaves no file behind: pg_dump
writes to a hidden ``.partial`` name that is renamed only on success.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bilantools.db import dump_files, dump_process, plain_dump, retention
from bilantools.db.dump_process import BackupError, ProgressHook
from bilantools.db.fingerprint import Fingerprint, fingerprint
from bilantools.db.pgtools import choose, connection_env, require_writable
from bilantools.db.sandbox import Sandbox
from bilantools.db.scratch import held
from bilantools.db.target import Target
from bilantools.errors import InputError, RefusedError, option
from bilantools.secrets import redact

Format = Literal["custom", "plain", "directory"]
Origin = Literal["manual", "automatic"]  # automatic: taken by apply/rollback before a change
EXTENSIONS: dict[str, str] = {"custom": "dump", "plain": "sql", "directory": "dir"}
DEFAULT_DIR = "backups"


@dataclass(frozen=True)
class Backup:
    file: Path
    sidecar: Path
    meta: dict[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])

    @property
    def bytes(self) -> int:
        return int(self.meta["bytes"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "sidecar": str(self.sidecar),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "kind": self.meta["kind"],
            "origin": self.meta.get("origin"),
            "format": self.meta["format"],
            "duration_ms": self.meta["duration_ms"],
            "migration_version": self.meta["migration_version"],
        }


@dataclass
class Verification:
    file: Path
    ok: bool
    differences: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # roles/extensions the restore lacked

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "ok": self.ok,
            "differences": self.differences,
            "missing": self.missing,
        }


# -- taking a backup ----------------------------------------------------------------------------
def take(
    target: Target,
    out_dir: Path | str = DEFAULT_DIR,
    schema_only: bool = False,
    fmt: Format = "custom",
    pg_bin: Path | str | None = None,
    progress: ProgressHook | None = None,
    lock_wait_timeout: str | None = None,
    origin: Origin = "manual",
) -> Backup:
    """Dump `target` into `out_dir`; the sidecar describes exactly what the dump holds.
    With `lock_wait_timeout` pg_dump gives up, rather than queue, when a table is locked
    (the automatic backup before a migration uses the run's lock timeout). `origin` and
    whether the target is the sandbox go into the sidecar: `prune` decides by them."""
    if fmt not in EXTENSIONS:
        raise InputError(f"--format {fmt}: choose custom, plain or directory")
    out = Path(out_dir).absolute()
    require_writable(out)
    kind = "schema" if schema_only else "full"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem, suffix = f"{dump_files.safe_name(target.dbname)}_{stamp}", f"_{kind}.{EXTENSIONS[fmt]}"
    # unique per run: two backups of the same second never write the same file
    partial = out / f".{stem}{suffix}.{os.getpid()}-{os.urandom(4).hex()}.partial"
    final: Path | None = None
    sidecar: Path | None = None
    try:
        conn = target.connect("bilantools backup")
        try:
            server_major = conn.info.server_version // 10000
            pg_dump = choose("pg_dump", server_major, pg_bin)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert snapshot is not None
            if lock_wait_timeout is not None:  # the row counts lock the tables as pg_dump does
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_wait_timeout,))
            args = [str(pg_dump.path), "--format", fmt, "--snapshot", snapshot[0], "--no-password"]
            if schema_only:
                args.append("--schema-only")
            if lock_wait_timeout is not None:
                args += ["--lock-wait-timeout", lock_wait_timeout]
            if fmt == "directory":  # the other formats stream through us, hashed on the way
                args += ["--file", str(partial)]
            described: dict[str, Any] = {}

            def describe() -> None:
                """Read in the dump's own snapshot while pg_dump works on the other core."""
                described["fingerprint"] = fingerprint(conn, rows=False)
                described["counts"] = {} if schema_only else row_counts(conn)
                described["migration_version"] = _migration_version(conn)
                version = conn.execute("SHOW server_version").fetchone()
                described["server_version"] = version[0] if version else None

            started = time.perf_counter()
            digest = dump_process.run(target, args, partial, progress, describe)
            duration_ms = int((time.perf_counter() - started) * 1000)
            conn.execute("COMMIT")
        finally:
            conn.close()
        with held():  # the finished dump gets its name and its sidecar; a signal waits, then undoes both
            try:
                dump_files.protect(partial)
                final = dump_files.claim(partial, out, stem, suffix)
                meta = {
                    "file": final.name,
                    "database": target.dbname,
                    "target": target.masked,
                    "kind": kind,
                    "origin": origin,
                    "sandbox": target.is_sandbox,
                    "format": fmt,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "server_version": described["server_version"],
                    "pg_dump": str(pg_dump.path),
                    "pg_dump_version": pg_dump.version,
                    "bytes": dump_files.size(final),
                    "sha256": digest or dump_files.sha256(final),
                    "duration_ms": duration_ms,
                    "migration_version": described["migration_version"],
                    "fingerprint": described["fingerprint"].digest,
                    "objects": _details(described["fingerprint"]),
                    "row_counts": described["counts"],
                    "verified": None,
                }
                sidecar = dump_files.sidecar_of(final)
                dump_files.write_json(sidecar, meta)
                taken = Backup(final, sidecar, meta)
            except OSError as exc:
                raise dump_process.write_failed(out, exc) from None
    except BaseException:  # an error, a full disk, Ctrl-C, SIGTERM: nothing partial stays,
        with held():  # and no dump without its sidecar (that is no backup)
            for path in (partial, final, sidecar):
                if path is not None:
                    dump_files.remove(path)
        raise
    return taken


# -- reading backups ------------------------------------------------------------------------------
def load(file: Path | str) -> Backup:
    """A backup and its sidecar; a clear error when the sidecar is missing or unreadable."""
    path = Path(file)
    sidecar = dump_files.sidecar_of(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a backup file ('bilantools backup list' shows them)")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path} has no sidecar {sidecar.name}: verify compares against it; take backups with "
            "'bilantools backup'"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{sidecar} cannot be read ({exc}); restore it from where you keep backups"
        ) from None
    return Backup(path, sidecar, meta)


def listing(out_dir: Path | str = DEFAULT_DIR) -> list[Backup]:
    """Every backup of `out_dir` that has a sidecar, newest first (two of the same second:
    the later written first)."""
    found = []
    for sidecar in Path(out_dir).glob("*.json"):
        file = sidecar.with_name(sidecar.name.removesuffix(".json"))
        try:
            found.append(Backup(file, sidecar, json.loads(sidecar.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return sorted(
        found, key=lambda b: (str(b.meta.get("created_at", "")), dump_files.mtime(b.file)), reverse=True
    )


def prune_plan(out_dir: Path | str = DEFAULT_DIR, keep: int = 5) -> retention.PrunePlan:
    """What `prune` would remove and keep, and why (the preview twin of `prune`)."""
    return retention.plan(listing(out_dir), keep)


def prune(
    out_dir: Path | str = DEFAULT_DIR, keep: int = 5, approved: retention.PrunePlan | None = None
) -> list[Path]:
    """Delete all but the newest `keep` backups of each database, origin and kind, never
    the newest verified one of each (see retention), with their sidecars; returns what
    went. With `approved` (a plan shown to the user), only what it and the directory as
    it is now both remove: a backup verified or taken since is never deleted unseen."""
    removed = []
    allowed = None if approved is None else {d.backup.file for d in approved.removed}
    for decision in prune_plan(out_dir, keep).removed:
        backup = decision.backup
        if allowed is not None and backup.file not in allowed:
            continue
        dump_files.remove(backup.file)
        backup.sidecar.unlink(missing_ok=True)
        removed.append(backup.file)
    if removed:
        dump_files.sync_directory(Path(out_dir))
    return removed


# -- proving a backup -----------------------------------------------------------------------------
def verify(file: Path | str, sandbox: Sandbox, pg_bin: Path | str | None = None) -> Verification:
    """Restore into a fresh sandbox database and compare with the sidecar."""
    backup = load(file)
    result = Verification(backup.file, ok=False)
    actual = dump_files.sha256(backup.file)
    if actual != backup.sha256:
        result.differences.append(
            f"{backup.file.name} changed since it was taken: SHA-256 {actual[:12]}... is not the "
            f"recorded {backup.sha256[:12]}... (truncated or corrupted); it cannot be trusted"
        )
        _record_verification(backup, result)
        return result
    if backup.meta["format"] == "plain":
        plain_dump.check(backup.file, "verify")  # before anything runs
    url = sandbox.new_db("verify_" + os.urandom(4).hex())
    from bilantools.db.target import parse_target

    scratch = parse_target(url, "sandbox")
    try:
        result.missing, errors = _restore_into(backup, scratch, clean=False, pg_bin=pg_bin)
        result.differences.extend(errors)
        if not errors:
            with scratch.connect("bilantools verify") as conn:
                result.differences.extend(compare(backup, conn))
    finally:
        sandbox.drop_db(scratch.dbname)
    result.ok = not result.differences
    _record_verification(backup, result)
    return result


def compare(backup: Backup, conn: Any) -> list[str]:
    """Differences between the backup's sidecar and the database behind `conn`."""
    now = fingerprint(conn, rows=False)
    differences = []
    if now.digest != backup.meta["fingerprint"]:
        recorded = backup.meta.get("objects", {})
        current = _details(now)
        for key in sorted(recorded.keys() | current.keys()):
            if key not in current:
                differences.append(f"{key.replace(chr(9), ' ')}: in the backup, not in the database")
            elif key not in recorded:
                differences.append(f"{key.replace(chr(9), ' ')}: in the database, not in the backup")
            elif recorded[key] != current[key]:
                differences.append(f"{key.replace(chr(9), ' ')}: differs")
        if not differences:
            differences.append("schema fingerprint differs")
    if backup.meta["kind"] == "full":
        counts = row_counts(conn)
        for table, rows in sorted(backup.meta.get("row_counts", {}).items()):
            live = counts.get(table)
            if live != rows:
                state = "the table is gone now" if live is None else f"{live} now"
                differences.append(f"table {table}: {rows} row(s) in the backup, {state}")
    return differences


# -- restoring ------------------------------------------------------------------------------------
def restore(
    file: Path | str, target: Target, clean: bool = False, pg_bin: Path | str | None = None
) -> list[str]:
    """Restore into `target`; refuses a non-empty database unless `clean`. Returns what the
    target lacked (roles, extensions) for objects that could not be restored as dumped."""
    backup = load(file)
    if dump_files.sha256(backup.file) != backup.sha256:
        raise RefusedError(
            f"{backup.file.name} does not match its recorded SHA-256 (truncated or corrupted): "
            "refusing to restore it"
        )
    if backup.meta["format"] == "plain":
        plain_dump.check(backup.file, "restore")  # before anything runs
    with target.connect("bilantools restore") as conn:
        objects = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        ).fetchone()
    if objects and objects[0] and not clean:
        raise RefusedError(
            f"{target.masked} is not empty ({objects[0]} relations): restore into an empty "
            f"database, or pass {option('clean', True)} to drop and replace what the backup contains"
        )
    if clean and backup.meta["format"] == "plain":
        raise RefusedError(
            f"{option('clean', True)} needs a custom or directory backup (a plain SQL dump cannot drop "
            "what it replaces): restore into an empty database instead"
        )
    missing, errors = _restore_into(backup, target, clean, pg_bin)
    if errors:
        raise BackupError(f"restore into {target.masked} failed: {errors[0]}")
    return missing


def _restore_into(
    backup: Backup, target: Target, clean: bool, pg_bin: Path | str | None
) -> tuple[list[str], list[str]]:
    """(missing roles/extensions, real errors) of restoring `backup` into `target`. A plain
    dump goes through psycopg, never psql (see plain_dump): only its SQL reaches the server."""
    with target.connect("bilantools restore") as conn:
        if backup.meta["format"] == "plain":
            return _classify("\n".join(plain_dump.restore(backup.file, conn)))
        server_major = conn.info.server_version // 10000
    dump_major = int(re.match(r"\d+", str(backup.meta.get("pg_dump_version", "0"))).group())  # type: ignore[union-attr]
    program = choose("pg_restore", max(server_major, dump_major), pg_bin)
    args = [str(program.path), "--no-owner", "--no-privileges", "--no-password", str(backup.file)]
    if clean:
        args[1:1] = ["--clean", "--if-exists"]
    with connection_env(target) as (conninfo, env):
        flag = "--dbname"
        completed = subprocess.run(
            [*args[:1], flag, conninfo, *args[1:]], env=env, capture_output=True, text=True
        )
    return _classify(completed.stderr)


_MISSING = (
    (re.compile(r'role "([^"]+)" does not exist'), "role {}"),
    (re.compile(r'extension "([^"]+)" is not available'), "extension {}"),
    (re.compile(r'could not open extension control file ".*/([^/]+)\.control"'), "extension {}"),
)


def _classify(stderr: str) -> tuple[list[str], list[str]]:
    missing: list[str] = []
    errors: list[str] = []
    for line in stderr.splitlines():
        if "ERROR" not in line and "error:" not in line:
            continue
        for pattern, label in _MISSING:
            match = pattern.search(line)
            if match:
                name = label.format(match[1])
                if name not in missing:
                    missing.append(name)
                break
        else:
            if "errors ignored on restore" not in line:
                errors.append(redact(" ".join(line.split())))
    return missing, errors


# -- helpers ----------------------------------------------------------------------------------------
def row_counts(conn: Any) -> dict[str, int]:
    """Exact row counts of every table (tracking tables excepted), in one query."""
    from bilantools.db.fingerprint import count_rows

    return {name: int(detail) for (_, name), detail in count_rows(conn, "public").items()}


def _migration_version(conn: Any) -> str | None:
    """The last version in bilantools' history, wherever its tracking schema is (a peer
    tool's schema_migrations, without our `success` column, is not ours)."""
    from psycopg import sql

    found = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'success' AND NOT a.attisdropped"
        " WHERE c.relname = 'schema_migrations' AND c.relkind IN ('r', 'p')"
        " ORDER BY n.nspname <> 'public', n.nspname LIMIT 1"
    ).fetchone()
    if found is None:
        return None
    row = conn.execute(
        sql.SQL("SELECT version FROM {} WHERE success ORDER BY applied_at DESC, id DESC LIMIT 1").format(
            sql.Identifier(found[0], "schema_migrations")
        )
    ).fetchone()
    return str(row[0]) if row else None


def _details(described: Fingerprint) -> dict[str, str]:
    return {
        f"{kind}\t{name}": hashlib.md5(detail.encode()).hexdigest()
        for (kind, name), detail in described.objects.items()
    }


def _record_verification(backup: Backup, result: Verification) -> None:
    meta = dict(backup.meta)
    meta["verified"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ok": result.ok,
        "differences": result.differences[:50],
        "missing": result.missing,
    }
    dump_files.write_json(backup.sidecar, meta)
