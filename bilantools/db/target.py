"""Where to act: a database URL from --db, DATABASE_URL, or the local sandbox.

A `Target` never shows its password: `str()`, `repr()` and every error built from it use
the masked form. The password itself is registered with `bilantools.secrets` so that a
server message quoting it is masked too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bilantools.errors import ConnectError, InputError
from bilantools.secrets import redact, register, register_written

if TYPE_CHECKING:
    import psycopg

Source = Literal["--db", "DATABASE_URL", "sandbox"]
URL_HINT = "expected postgresql://user:password@host:5432/dbname"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


@dataclass(frozen=True)
class Target:
    """A database to act on; `conninfo` holds the secret and is never shown."""

    conninfo: str = field(repr=False)
    source: Source
    is_sandbox: bool
    params: dict[str, str] = field(repr=False, compare=False)

    @property
    def masked(self) -> str:
        return redact(self.conninfo)

    @property
    def dbname(self) -> str:
        return self.params.get("dbname", self.params.get("user", ""))

    @property
    def kind(self) -> str:
        return "sandbox" if self.is_sandbox else "database"

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Target({self.masked!r}, source={self.source!r}, is_sandbox={self.is_sandbox})"

    def connect(self, purpose: str = "bilantools", connect_timeout: int = 10) -> psycopg.Connection:
        """An autocommit connection named after `purpose` (seen in pg_stat_activity)."""
        import psycopg

        try:
            return psycopg.connect(
                self.conninfo,
                autocommit=True,
                application_name=purpose[:63],
                connect_timeout=connect_timeout,
            )
        except psycopg.Error as exc:
            raise ConnectError(f"cannot connect to {self.masked}: {explain(exc)}") from None


def parse_target(url: str, source: Source, sandbox_port: int | None = None) -> Target:
    """Validate `url` (a postgresql:// URL or a libpq key=value string)."""
    from psycopg.conninfo import conninfo_to_dict

    register_written(url)  # before parsing: libpq's own complaint may quote the password
    if not url.strip():
        raise InputError(f"the database URL from {source} is empty; {URL_HINT}")
    if "://" in url and not re.match(r"^postgres(ql)?://", url, re.I):
        raise InputError(f"malformed database URL {redact(url)} from {source}: unknown scheme; {URL_HINT}")
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except Exception as exc:  # psycopg raises ProgrammingError with libpq's reason
        reason = " ".join(str(exc).split())
        raise InputError(
            f"malformed database URL {redact(url)} from {source}: {reason}; {URL_HINT}"
        ) from None
    register(params.get("password"))
    port = params.get("port", "")
    ports = [p.strip() for p in port.split(",")] if port else []
    if not all(p.isascii() and p.isdigit() for p in ports):
        raise InputError(
            f"malformed database URL {redact(url)} from {source}: port '{port}' is not a number; {URL_HINT}"
        )
    if not all(1 <= int(p) <= 65535 for p in ports):
        raise InputError(
            f"malformed database URL {redact(url)} from {source}: port '{port}' is not a TCP port "
            f"(1 to 65535); {URL_HINT}"
        )
    is_sandbox = source == "sandbox" or (
        sandbox_port is not None
        and params.get("host", "") in LOCAL_HOSTS
        and params.get("port", "5432") == str(sandbox_port)
    )
    return Target(url, source, is_sandbox, params)


def explain(exc: BaseException) -> str:
    """One line from a psycopg connection error, with the fix for the usual causes."""
    text = " ".join(str(exc).split())
    core = text.rsplit(" failed: ", 1)[-1] if " failed: " in text else text
    core = core.replace("FATAL: ", "").strip()
    lowered = core.lower()
    if "password authentication failed" in lowered:
        hint = "check the user name and password in --db or DATABASE_URL"
    elif "no password supplied" in lowered:
        hint = "put the password in the URL, in PGPASSWORD or in ~/.pgpass"
    elif "database" in lowered and "does not exist" in lowered:
        hint = "create the database first, or fix its name in the URL"
    elif "role" in lowered and "does not exist" in lowered:
        hint = "check the user name in the URL"
    elif any(
        s in lowered
        for s in ("refused", "translate host", "resolve host", "timeout", "no route", "unreachable")
    ):
        hint = "check the host and port, and that the server is running and reachable"
    else:
        hint = "check the URL and the server"
    return redact(f"{core}; {hint}")
