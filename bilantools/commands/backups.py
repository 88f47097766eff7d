"""Backups and restores: take, list, prune, verify, compare, restore.

Part of the front door: see `bilantools.commands`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bilantools import session
from bilantools.db.sandbox import Sandbox
from bilantools.options import DEFAULT_BACKUP_DIR
from bilantools.session import TargetLike, resolve_target

if TYPE_CHECKING:
    from bilantools.db.backup import Backup
    from bilantools.db.backup import Verification as BackupVerification
    from bilantools.db.retention import PrunePlan


def backup(
    *,
    target: TargetLike = None,
    out: Path | str = DEFAULT_BACKUP_DIR,
    schema_only: bool = False,
    fmt: str = "custom",
    pg_bin: Path | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Backup:
    """pg_dump `target` into `out` with a sidecar (versions, SHA-256, fingerprint, row counts)."""
    from bilantools.db import backup as backups

    return backups.take(resolve_target(target=target), out, schema_only, fmt, pg_bin, progress)  # type: ignore[arg-type]


def backup_list(*, out: Path | str = DEFAULT_BACKUP_DIR) -> list[Backup]:
    """The backups of `out`, newest first."""
    from bilantools.db import backup as backups

    return backups.listing(out)


def backup_prune_plan(*, out: Path | str = DEFAULT_BACKUP_DIR, keep: int = 5) -> PrunePlan:
    """What `backup_prune` would remove and keep in `out`, each with its reason."""
    from bilantools.db import backup as backups

    return backups.prune_plan(out, keep)


def backup_prune(
    *, out: Path | str = DEFAULT_BACKUP_DIR, keep: int = 5, approved: PrunePlan | None = None
) -> list[Path]:
    """Delete all but the newest `keep` backups of each database, origin (automatic or
    manual) and kind in `out`, never the newest verified one of each; with `approved`,
    nothing that plan did not list. Returns the files removed."""
    from bilantools.db import backup as backups

    return backups.prune(out, keep, approved)


def backup_verify(*, file: Path | str, pg_bin: Path | str | None = None) -> BackupVerification:
    """Restore `file` into a fresh sandbox database and compare it with its sidecar."""
    from bilantools.db import backup as backups

    return backups.verify(file, Sandbox(), pg_bin)


def backup_diff(*, file: Path | str, target: TargetLike = None) -> list[str]:
    """What differs between the backup's sidecar and the target as it is now."""
    from bilantools.db import backup as backups

    loaded = backups.load(file)
    with session.connection(target, "backup diff") as (_, conn):
        return backups.compare(loaded, conn)


def restore(
    *, file: Path | str, target: TargetLike = None, clean: bool = False, pg_bin: Path | str | None = None
) -> list[str]:
    """Restore `file` into the target (empty unless `clean`); returns the roles and extensions
    the target lacked."""
    from bilantools.db import backup as backups

    return backups.restore(file, resolve_target(target=target), clean, pg_bin)
