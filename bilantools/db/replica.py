"""A streaming replica of the sandbox: a second local server in recovery, for lag gates.

It is made with ``pg_basebackup -R`` (which writes ``standby.signal`` and the primary's
connection string) into ``<home>/pg<major>/replicas/<name>/data`` and started with
``pg_ctl`` on its own free port on 127.0.0.1. It sends its replay position every second
(``wal_receiver_status_interval = 1``) so the primary's ``pg_stat_replication.replay_lag``
follows a paused or slow replay closely. The primary streams to it as the ``postgres``
superuser, which pg_hba.conf trusts for replication on 127.0.0.1 only (the entry is added
on first use, next to the existing loopback trust of ``postgres``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bilantools.db.sandbox import (
    DB_NAME,
    DEFAULT_DB,
    HOST,
    SUPERUSER,
    Running,
    Sandbox,
    _alive,
    _free_port,
    _read_int,
    _service_user,
    _tail,
    _up,
)
from bilantools.errors import InputError, SandboxError, option

HBA_LINE = "host replication postgres 127.0.0.1/32 trust"


class Replica:
    """The replica called `name` of the sandbox `box` (running or not)."""

    def __init__(self, box: Sandbox, name: str) -> None:
        if not DB_NAME.match(name):
            raise InputError(
                f"invalid replica name {option('name', name)}: use letters, digits and underscores "
                "(63 at most, not starting with a digit)"
            )
        self.box, self.name = box, name

    def _base(self, primary: Running) -> Path:
        return primary.data_dir.parent / "replicas" / self.name

    def running(self) -> tuple[int, int] | None:
        """(pid, port) of the replica when it is up, from its postmaster.pid."""
        for pidfile in self.box.home.glob(f"pg*/replicas/{self.name}/data/postmaster.pid"):
            up = _up(pidfile)
            if up is not None:
                return up
        return None

    def url(self, port: int) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{port}/{DEFAULT_DB}"

    def start(self) -> str:
        """Start the replica (cloning the sandbox on first use) and return its URL."""
        up = self.running()
        if up is not None:
            return self.url(up[1])
        self.box.start()
        primary = self.box.running()
        assert primary is not None
        bin_dir = Path((primary.data_dir.parent / "bin").read_text().strip())
        base = self._base(primary)
        data = base / "data"
        if not (data / "standby.signal").exists():
            shutil.rmtree(data, ignore_errors=True)  # a clone that did not finish
            self._allow_replication(primary)
            base.mkdir(parents=True, exist_ok=True)
            owner = _service_user()
            if owner is not None:
                for path in (base.parent, base):
                    os.chown(path, owner[0], owner[1])
            args = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", str(data)]
            result = self.box._run(
                [str(bin_dir / "pg_basebackup"), *args, "-R", "-X", "stream", "-c", "fast"], check=False
            )
            if result.returncode != 0:
                shutil.rmtree(data, ignore_errors=True)
                raise SandboxError(f"pg_basebackup of the sandbox failed: {' '.join(result.stderr.split())}")
        port = _free_port(_read_int(base / "port"))
        (base / "port").write_text(f"{port}\n")
        log = base / "server.log"
        settings = f"-p {port} -c wal_receiver_status_interval=1"
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]
        result = self.box._run([*pg_ctl, "-o", settings, "start"], check=False)
        if result.returncode != 0:
            raise SandboxError(f"the replica {self.name} did not start: {_tail(log)}; see {log}")
        return self.url(port)

    def stop(self) -> bool:
        """Stop the replica; False when it was not running."""
        up = self.running()
        if up is None:
            return False
        data = next(self.box.home.glob(f"pg*/replicas/{self.name}/data"))
        bin_dir = Path((data.parent.parent.parent / "bin").read_text().strip())
        result = self.box._run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"], check=False
        )
        if result.returncode != 0 and _alive(up[0]):
            raise SandboxError(f"the replica {self.name} did not stop: {result.stderr.strip()}")
        return True

    def status(self) -> dict[str, object]:
        up = self.running()
        return {
            "name": self.name,
            "running": up is not None,
            "pid": up[0] if up else None,
            "port": up[1] if up else None,
            "url": self.url(up[1]) if up else None,
        }

    def _allow_replication(self, primary: Running) -> None:
        """Let the primary stream to 127.0.0.1 (added once to its pg_hba.conf, then reloaded)."""
        import psycopg

        hba = primary.data_dir / "pg_hba.conf"
        with psycopg.connect(self.box.url("postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('wal_level')").fetchone()
            if row is None or row[0] == "minimal":
                raise SandboxError("the sandbox runs with wal_level = minimal: a replica needs 'replica'")
            if HBA_LINE not in hba.read_text().splitlines():
                with hba.open("a", encoding="utf-8") as fh:
                    fh.write(f"# bilantools sandbox replicas stream over loopback only\n{HBA_LINE}\n")
                conn.execute("SELECT pg_reload_conf()")


def replica_names(box: Sandbox) -> list[str]:
    """The replicas of the sandbox that have a data directory."""
    return sorted({path.parent.name for path in box.home.glob("pg*/replicas/*/data")})
