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
from bilantools.secrets import (
    SECRET_KEYS,
    mask_written,
    readings,
    redact,
    register,
    register_pieces,
    register_written,
    written_passwords,
)

if TYPE_CHECKING:
    import psycopg

Source = Literal["--db", "DATABASE_URL", "sandbox"]
URL_HINT = "expected postgresql://user:password@host:5432/dbname"
ENCODING_HINT = (
    "write the password percent-encoded (@ as %40, / as %2F, % as %25, & as %26, a space as %20), "
    "or leave it out of the URL and give it in PGPASSWORD or ~/.pgpass"
)
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
        return redact(mask_written(self.conninfo))

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
    """Validate `url` (a postgresql:// URL or a libpq key=value string). Every message
    shows it masked as written, whatever libpq makes of it."""
    from psycopg.conninfo import conninfo_to_dict

    register_written(url)  # before parsing: libpq's own complaint may quote the password
    shown = mask_written(url)
    if not url.strip():
        raise InputError(f"the database URL from {source} is empty; {URL_HINT}")
    is_url = re.match(r"[a-z][a-z0-9+.-]*://", url.lstrip(), re.I) is not None
    if is_url and not re.match(r"^postgres(ql)?://", url.lstrip(), re.I):
        raise InputError(f"malformed database URL {shown} from {source}: unknown scheme; {URL_HINT}")
    hint = ENCODING_HINT if is_url and _needs_encoding(url) else URL_HINT
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except Exception as exc:  # psycopg raises ProgrammingError with libpq's reason
        reason = " ".join(str(exc).split())
        register_pieces(url, reason)
        raise InputError(f"malformed database URL {shown} from {source}: {reason}; {hint}") from None
    read = {params[key] for key in SECRET_KEYS if key in params}
    for secret in read:
        register(secret)
    written = written_passwords(url)
    if any(not readings(w) & read for w in written):  # libpq read the URL otherwise
        hosts = [*params.get("host", "").split(","), params.get("port", "")]
        if is_url and any("@" in h and not h.startswith("/") for h in hosts):
            raise InputError(
                f"malformed database URL {shown} from {source}: the user name or password holds an "
                f"unencoded '@', so the rest was read as the host; {ENCODING_HINT}"
            )
        if is_url and "password" not in params and any(re.search(r"/[^?]*$", w) for w in written):
            raise InputError(
                f"malformed database URL {shown} from {source}: the password holds an unencoded "
                "'/', so the rest was read as the database name (a database name holding '@' must "
                f"write it %40); {ENCODING_HINT}"
            )
        register_pieces(url, " ".join(v for k, v in params.items() if k not in SECRET_KEYS))
        if is_url:
            raise InputError(
                f"malformed database URL {shown} from {source}: the password holds a character that "
                f"ends it in a URL; {ENCODING_HINT}"
            )
    port = params.get("port", "")
    ports = [p.strip() for p in port.split(",")] if port else []
    if not all(p.isascii() and p.isdigit() for p in ports):
        raise InputError(
            f"malformed database URL {shown} from {source}: port '{port}' is not a number; {hint}"
        )
    if not all(1 <= int(p) <= 65535 for p in ports):
        raise InputError(
            f"malformed database URL {shown} from {source}: port '{port}' is not a TCP port "
            f"(1 to 65535); {hint}"
        )
    is_sandbox = source == "sandbox" or (
        sandbox_port is not None
        and params.get("host", "") in LOCAL_HOSTS
        and params.get("port", "5432") == str(sandbox_port)
    )
    return Target(url, source, is_sandbox, params)


def _needs_encoding(url: str) -> bool:
    """Whether a password written in `url` holds what libpq cannot read there as typed."""
    return any(re.search(r"[@/&\s]|%(?![0-9A-Fa-f]{2})", password) for password in written_passwords(url))


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
