"""The one exception hierarchy of bilantools.

The CLI catches only `BilanToolsError`, prints its message (one line that names the
problem and the fix) and exits with its `exit_code`. Messages never contain a password:
they are built from masked URLs and passed through `redact` when they quote the server.
"""

from __future__ import annotations


class BilanToolsError(Exception):
    """Root of every error bilantools raises on purpose."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        from bilantools.secrets import redact

        super().__init__(redact(" ".join(message.split())))

    @property
    def message(self) -> str:
        return str(self)


class InputError(BilanToolsError):
    """Bad migrations directory, file, header, flag or URL: nothing was changed."""


class ConnectError(BilanToolsError):
    """The database cannot be reached or refuses us."""


class ConnectionLostError(ConnectError):
    """The connection broke while a run was changing the database (crash, network, kill)."""


class RefusedError(BilanToolsError):
    """The operation is unsafe in the current state and was not started."""


class LockTimeoutError(BilanToolsError):
    """Another runner holds the migration lock."""


class SandboxError(BilanToolsError):
    """The local embedded PostgreSQL could not be started, stopped or used."""


class MigrationFailed(BilanToolsError):
    """A migration or rollback script failed; its own changes were rolled back."""

    exit_code = 1

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
    ) -> None:
        super().__init__(message)
        self.version = version
        self.file = file
        self.line = line
        self.statement = statement
        self.server_message = server_message
        self.partial = partial


class DatabaseError(BilanToolsError):
    """The server refused a query bilantools needed (permissions, lost connection...)."""
