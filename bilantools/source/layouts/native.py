"""bilantools' own layout: ``NNN_slug.sql`` and ``NNN_slug_rollback.sql`` (read by
`bilantools.source.files.discover`)."""

from __future__ import annotations

from pathlib import Path

from bilantools.source.files import FILE_NAME
from bilantools.source.layouts import dbmate

NAME = "bilantools"
NAMING = "NNN_slug.sql (rollback NNN_slug_rollback.sql)"


def score(files: list[Path]) -> int:
    """How many of `files` are named ``NNN_slug[_rollback].sql`` and are not dbmate files
    (whose names have the same shape: their ``-- migrate:`` lines tell them apart)."""
    return sum(1 for p in files if FILE_NAME.match(p.name) and not dbmate.claims(p))
