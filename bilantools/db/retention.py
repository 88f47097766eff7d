"""Which backups `backup prune` keeps, and why.

A backup directory is shared: several databases, automatic backups taken before a
migration and manual ones, full and schema-only. `--keep N` therefore keeps the newest N
of each group (database, origin, kind), never one group's backups in place of another's,
and never the newest backup of a group whose restore drill passed (`backup verify`):
the one copy known to restore is worth more than any number of newer unproven ones.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bilantools.errors import InputError, option

if TYPE_CHECKING:
    from bilantools.db.backup import Backup

UNRECORDED = "unrecorded"  # sidecars written before bilantools recorded the origin


@dataclass(frozen=True)
class Decision:
    backup: Backup
    remove: bool
    reason: str

    @property
    def group(self) -> tuple[str, str, str]:
        return group(self.backup)

    def as_dict(self) -> dict[str, Any]:
        database, origin, kind = self.group
        return {
            "file": str(self.backup.file),
            "database": database,
            "origin": origin,
            "kind": kind,
            "created_at": self.backup.meta.get("created_at"),
            "verified": verified(self.backup),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PrunePlan:
    """What pruning to `keep` per group removes and keeps, newest first."""

    keep: int
    decisions: list[Decision]

    @property
    def removed(self) -> list[Decision]:
        return [d for d in self.decisions if d.remove]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.remove]

    @property
    def needs_confirmation(self) -> bool:
        """Deleting a backup of anything but the sandbox is asked for first."""
        return any(d.backup.meta.get("sandbox") is not True for d in self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "removed": [d.as_dict() for d in self.removed],
            "kept": [d.as_dict() for d in self.kept],
        }


def group(backup: Backup) -> tuple[str, str, str]:
    """(database, origin, kind): what a backup can stand in for."""
    meta = backup.meta
    return (str(meta.get("database", "?")), str(meta.get("origin") or UNRECORDED), str(meta.get("kind", "?")))


def verified(backup: Backup) -> bool:
    check = backup.meta.get("verified")
    return isinstance(check, dict) and check.get("ok") is True


def describe(key: tuple[str, str, str]) -> str:
    """ "bilan's automatic full backups", "bilan's schema backups of unrecorded origin"."""
    database, origin, kind = key
    if origin == UNRECORDED:
        return f"{database}'s {kind} backups of unrecorded origin"
    return f"{database}'s {origin} {kind} backups"


def plan(backups: list[Backup], keep: int) -> PrunePlan:
    """Decide for `backups` (newest first) with `keep` per group."""
    if keep < 1:
        raise InputError(f"{option('keep', keep)}: keep at least 1 backup")
    seen: dict[tuple[str, str, str], int] = defaultdict(int)
    proven: set[tuple[str, str, str]] = set()
    decisions = []
    for backup in backups:
        key = group(backup)
        seen[key] += 1
        if seen[key] <= keep:
            decision = Decision(backup, False, f"among the newest {keep} of {describe(key)}")
        elif verified(backup) and key not in proven:
            decision = Decision(backup, False, f"the newest verified of {describe(key)}")
        else:
            decision = Decision(backup, True, f"older than the newest {keep} of {describe(key)}")
        if verified(backup):
            proven.add(key)
        decisions.append(decision)
    return PrunePlan(keep, decisions)
