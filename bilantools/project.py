"""`Project`: a migrations directory, read once and reused across targets.

Discovery, settings, the check report and the object analysis are each computed on first
use and kept, so a caller that runs one Project against many databases (or one database
many times) reads and parses the files once. A Project is a snapshot: files edited after
it read them are seen by a new `Project.load`. Only the layout is settled at load (given,
configured, or detected from the file names), so that an ambiguous or unrecognised
directory fails before any command starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bilantools.errors import InputError, option
from bilantools.source.files import MigrationSet
from bilantools.source.layouts import LAYOUTS as SPECS
from bilantools.source.layouts import LayoutName, detect, discover

if TYPE_CHECKING:
    from bilantools.source.check import CheckReport
    from bilantools.source.config import CheckConfig
    from bilantools.source.graph import Analysis

# How the directory names its files (see `bilantools.source.layouts`): ours, NNN_slug.sql +
# NNN_slug_rollback.sql, or another tool's, read as that tool wrote them.
Layout = LayoutName
LAYOUTS: tuple[Layout, ...] = ("bilantools", "golang-migrate", "dbmate", "flyway", "sqitch")
# Where the layout came from: the caller (`layout=`, the CLI's --layout), the nearest
# pyproject.toml's [tool.bilantools] layout, or detection from the files.
LayoutSource = Literal["given", "pyproject.toml", "detected"]
DEFAULT_MIGRATIONS = "migrations"


@dataclass(eq=False)
class Project:
    """The migrations directory with its layout; everything read from it is cached."""

    directory: Path
    layout: Layout = "bilantools"
    layout_source: LayoutSource = "given"

    @classmethod
    def load(cls, path: Path | str = DEFAULT_MIGRATIONS, layout: str | None = None) -> Project:
        """The project of directory `path` in `layout`; without one, the layout of the
        nearest pyproject.toml's ``[tool.bilantools] layout``, else the one detected from
        the file names (and dbmate's section lines). Only that is read now: the
        migrations themselves are read on first use."""
        directory = Path(path)
        if layout is not None:
            spec = SPECS.get(layout)
            if spec is None:
                raise InputError(
                    f"unknown migrations layout '{layout}'; choose one of {', '.join(LAYOUTS)} "
                    f"({option('layout', 'NAME')})"
                )
            return cls(directory, spec.name, "given")
        if directory.is_dir():  # a missing directory is reported by discovery, first
            from bilantools.source.config import load_config

            configured = load_config(directory.absolute()).layout
            if configured is not None:
                return cls(directory, configured, "pyproject.toml")
        return cls(directory, detect(directory), "detected")

    @cached_property
    def migrations(self) -> MigrationSet:
        """The migrations found in the directory, in order (with the directory's findings)."""
        return discover(self.directory, self.layout)

    @cached_property
    def settings(self) -> CheckConfig:
        """The ``[tool.bilantools]`` settings of the nearest pyproject.toml."""
        from bilantools.source.config import load_config

        return load_config(self.directory.absolute())

    @cached_property
    def report(self) -> CheckReport:
        """Every problem of the directory (see `bilantools.source.check`)."""
        from bilantools.db.history import tracking
        from bilantools.source.check import check

        found = self.migrations  # a missing directory is reported before a bad setting
        schema = self.settings.tracking_schema_for(self.layout)
        return check(self.directory, config=self.settings, found=found, tracking=tracking(schema))

    @cached_property
    def analysis(self) -> Analysis:
        """Which objects each migration creates, alters and drops (for verify and detect)."""
        from bilantools.db.history import tracking_objects
        from bilantools.source.graph import analyse

        return analyse(self.migrations, tracking_objects())

    @cached_property
    def categories(self) -> dict[str, list[str]]:
        """The table categories of ``categories.toml`` beside the migrations (may be empty)."""
        from bilantools.source.categories import load_categories

        return load_categories(self.directory)


ProjectLike = Project | Path | str


def as_project(project: ProjectLike) -> Project:
    """`project` itself, or the project of a directory path."""
    return project if isinstance(project, Project) else Project.load(project)
