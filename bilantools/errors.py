"""The one exception hierarchy of bilantools.

The CLI catches only `BilanToolsError`, prints its message (one line that names the
problem and the fix) and exits with its `exit_code`; `--json` names the error's `kind`.
Messages never contain a password: they are built from masked URLs and passed through
`redact` when they quote the server.

A fix that names an option is written as a placeholder with the Python parameter's name:
``{option:to}`` (the parameter itself), ``{option:lock_wait=60}`` (a value) or
``{option:force=True}`` (a switch turned on). ``str(error)`` spells it as Python (``to``,
``lock_wait=60``, ``force=True``) and each face spells it its own way with `render` (the
CLI: ``--to``, ``--lock-wait 60``, ``--force``), so no caller is told to use a flag it
does not have. `params` lists the parameters a message names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

OPTION = re.compile(r"\{option:([a-z_]+)(?:=([^{}]*))?\}")

# How a face spells an option: (parameter name, value or None for a switch) -> text.
Spelling = Callable[[str, "str | None"], str]


def python_spelling(name: str, value: str | None) -> str:
    """``to`` for the parameter itself, ``to=005`` or ``force=True`` with a value (as a
    Python caller passes it)."""
    return name if value is None else f"{name}={value}"


def option(name: str, value: object = None) -> str:
    """The placeholder for parameter `name` in a message (value None: the parameter
    itself; True: a switch turned on)."""
    return "{option:" + name + ("" if value is None else f"={value}") + "}"


class BilanToolsError(Exception):
    """Root of every error bilantools raises on purpose."""

    exit_code = 2
    kind = "error"

    def __init__(self, message: str) -> None:
        from bilantools.secrets import redact

        self.template = redact(" ".join(message.split()))
        self.params: tuple[str, ...] = tuple(m.group(1) for m in OPTION.finditer(self.template))
        super().__init__(self.render(python_spelling))
        # A run that stopped: what it had done (RunResult.as_dict(): its committed steps).
        self.run: dict[str, Any] | None = None

    def render(self, spell: Spelling) -> str:
        """The message with each option placeholder spelled by `spell`."""
        return OPTION.sub(lambda m: spell(m.group(1), m.group(2)), self.template)

    @property
    def message(self) -> str:
        return str(self)


class InputError(BilanToolsError):
    """Bad migrations directory, file, header, flag or URL: nothing was changed."""

    kind = "bad-input"


class ConnectError(BilanToolsError):
    """The database cannot be reached or refuses us."""

    kind = "unreachable"


class ConnectionLostError(ConnectError):
    """The connection broke while a run was changing the database (crash, network, kill)."""

    kind = "connection-lost"


class RefusedError(BilanToolsError):
    """The operation is unsafe in the current state and was not started."""

    kind = "refused"


class LockTimeoutError(BilanToolsError):
    """Another runner holds the migration lock."""

    kind = "locked"


class SandboxError(BilanToolsError):
    """The local embedded PostgreSQL could not be started, stopped or used."""

    kind = "sandbox"


class StoppedInMigration(BilanToolsError):
    """Base of the errors that stop a run inside a migration: where (version, file, line)
    and whether part of it had committed (`partial`), for the message and the JSON."""

    def __init__(
        self,
        message: str,
        *,
        version: str | None = None,
        file: str | None = None,
        line: int | None = None,
        partial: bool = False,
    ) -> None:
        super().__init__(message)
        self.version = version
        self.file = file
        self.line = line
        self.partial = partial


class MigrationFailed(StoppedInMigration):
    """A migration or rollback script failed; its own changes were rolled back."""

    exit_code = 1
    kind = "failed"
    version: str  # a failure always has its migration and file
    file: str

    def __init__(
        self,
        message: str,
        *,
        version: str,
        file: str,
        line: int | None,
        statement: str | None,
        server_message: str,
        partial: bool = False,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, version=version, file=file, line=line, partial=partial)
        self.statement = statement
        self.server_message = server_message
        self.retryable = retryable  # nothing wrong with the file: run it again later (a lock timeout)


class DatabaseError(BilanToolsError):
    """The server refused a query bilantools needed (permissions, lost connection...)."""

    kind = "database"


class RunInterrupted(StoppedInMigration):
    """Ctrl-C (SIGINT) stopped a run: the running statement was cancelled, the current
    migration rolled back; the message names what had committed. Exit 130, as a shell
    reports a command ended by SIGINT."""

    exit_code = 130
    kind = "interrupted"  # version/file/line: the migration that was running, if one was
