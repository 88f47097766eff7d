"""The fleet part of the front door, re-exported by `bilantools.commands`: which targets
run in which waves, a rollout over them, and each target's preflight gates.

`commands` imports this module, and the rollout (and the plan read for the gates) is
made of `commands.*` calls: those are imported when a rollout or a reading starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bilantools.db.health import GateSettings, Health, load_gate_settings, read_health
from bilantools.errors import BilanToolsError
from bilantools.fleet.results import RolloutResult, Watcher
from bilantools.fleet.selection import Selection, Stage
from bilantools.options import RunOptions
from bilantools.project import DEFAULT_MIGRATIONS, ProjectLike, as_project

DEFAULTS = RunOptions()


def fleet_select(*, project: ProjectLike = DEFAULT_MIGRATIONS, selection: Selection) -> list[Stage]:
    """The waves of a fleet command and their targets (see `Selection`); the default fleet
    file is fleet.toml beside the project's pyproject.toml."""
    return selection.stages(as_project(project).directory)


def fleet(
    *,
    action: str,
    stages: list[Stage],
    project: ProjectLike = DEFAULT_MIGRATIONS,
    options: RunOptions = DEFAULTS,
    watch: Watcher | None = None,
    rollout_id: str | None = None,
) -> RolloutResult:
    """`action` (apply, rollback, status, plan, verify, drift, validate, backup) over the
    targets of `stages`, wave by wave: see `bilantools.fleet.rollout`. `rollout_id`: the
    caller's (a face that reports a stopped rollout), else a new one."""
    from bilantools.fleet.rollout import Rollout

    found = as_project(project)
    return Rollout(
        project=found, stages=stages, action=action, options=options, watch=watch, rollout_id=rollout_id
    ).run()


@dataclass(frozen=True)
class Preflight:
    """The fleet's health gates read once: the settings, and each target's verdict."""

    settings: GateSettings
    targets: dict[str, Health]  # by target name, wave after wave

    @property
    def blocked(self) -> list[str]:
        """The targets an apply would hold now (or could not read)."""
        return [name for name, health in self.targets.items() if not health.ok]


def fleet_health(
    *, stages: list[Stage], project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> Preflight:
    """Each target's health gates, read once now as `fleet apply` reads them before it
    starts on a target: under the project's ``[tool.bilantools.gates]`` settings, a vacuum
    blocking only on a table the target's pending migrations (`options.to`, `step`) touch.
    A target that cannot be read is blocked, its reason the error. Reads only."""
    from bilantools import commands

    found = as_project(project)
    settings = load_gate_settings(found.directory.absolute())
    targets: dict[str, Health] = {}
    for member in (m for stage in stages for m in stage.members):
        try:
            pending = commands.plan(target=member.target, project=found, options=options)
            tables = found.analysis.touched_tables(m.version for m in pending)
            with member.target.connect("bilantools fleet gates") as conn:
                targets[member.name] = read_health(conn, settings, tables)
        except BilanToolsError as exc:
            targets[member.name] = Health(False, [str(exc)], {})
    return Preflight(settings, targets)
