"""The front door: one function per user-level operation.

The CLI and the notebook widgets call these and nothing below them. Every parameter is
a keyword: the target (a `Target`, a URL, or None for DATABASE_URL / the sandbox), the
project (a `Project`, or its migrations directory) and, for the runs, one `RunOptions`.
They return plain results. Errors are `BilanToolsError`s whose message names the problem
and the fix; nothing here prompts or prints. The types a face needs are re-exported
here, so a face imports this module and `bilantools.errors` only.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bilantools.commands.backups import (
    backup,
    backup_diff,
    backup_list,
    backup_prune,
    backup_prune_plan,
    backup_verify,
    restore,
)
from bilantools.commands.runs import (
    DEFAULTS as DEFAULTS,  # the run options of a call that passes none (the faces' default too)
)
from bilantools.commands.runs import (
    adopt,
    apply,
    apply_check,
    baseline,
    check,
    lock_estimate,
    needs_confirmation,
    new,
    plan,
    plan_sql,
    repair,
    rollback,
    rollback_plan,
    rollback_sql,
    status,
    validate,
)
from bilantools.commands.schema import (
    INSPECTIONS,
    detect,
    drift,
    erd,
    fingerprint,
    history,
    inspect,
    inspect_table,
    locks,
    stats,
    verify,
)
from bilantools.commands.workspace import runbook, runbook_history, runbook_parameters, sandbox
from bilantools.db.engine.limits import DEFAULT_LOCK_TIMEOUT
from bilantools.db.engine.results import (
    MigrationStatus,
    Progress,
    ProgressHook,
    RunResult,
    State,
    Status,
    Step,
)
from bilantools.db.lock import DEFAULT_WAIT
from bilantools.db.sandbox import Sandbox
from bilantools.db.scratch import Stopped, stop_on_signals
from bilantools.db.target import Target
from bilantools.options import DEFAULT_BACKUP_DIR, RunOptions
from bilantools.project import DEFAULT_MIGRATIONS, LAYOUTS, Project, ProjectLike
from bilantools.secrets import redact
from bilantools.session import TargetLike, resolve_target
from bilantools.source.files import Migration
from bilantools.source.findings import Finding
from bilantools.source.headers import DURATION_HINT, parse_duration

if TYPE_CHECKING:
    from bilantools.fleet.front import Preflight, fleet, fleet_health, fleet_select
    from bilantools.fleet.results import RolloutResult, TargetRun
    from bilantools.fleet.selection import Selection, Stage

# The fleet's part of the door, imported on first use: `bilantools status` does not pay for
# the fleet machinery (tests/test_startup.py).
_FLEET = {
    **dict.fromkeys(("Preflight", "fleet", "fleet_health", "fleet_select"), "bilantools.fleet.front"),
    **dict.fromkeys(("RolloutResult", "TargetRun"), "bilantools.fleet.results"),
    **dict.fromkeys(("Selection", "Stage"), "bilantools.fleet.selection"),
}


def __getattr__(name: str) -> Any:
    if name in _FLEET:
        return getattr(import_module(_FLEET[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BACKUP_DIR",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MIGRATIONS",
    "DEFAULT_WAIT",
    "DURATION_HINT",
    "INSPECTIONS",
    "LAYOUTS",
    "Finding",
    "Migration",
    "MigrationStatus",
    "Preflight",
    "Progress",
    "ProgressHook",
    "Project",
    "ProjectLike",
    "RolloutResult",
    "RunOptions",
    "RunResult",
    "Sandbox",
    "Selection",
    "Stage",
    "State",
    "Status",
    "Step",
    "Stopped",
    "Target",
    "TargetLike",
    "TargetRun",
    "adopt",
    "apply",
    "apply_check",
    "backup",
    "backup_diff",
    "backup_list",
    "backup_prune",
    "backup_prune_plan",
    "backup_verify",
    "baseline",
    "check",
    "detect",
    "drift",
    "erd",
    "fingerprint",
    "fleet",
    "fleet_health",
    "fleet_select",
    "history",
    "inspect",
    "inspect_table",
    "lock_estimate",
    "locks",
    "needs_confirmation",
    "new",
    "parse_duration",
    "plan",
    "plan_sql",
    "redact",
    "repair",
    "resolve_target",
    "restore",
    "rollback",
    "rollback_plan",
    "rollback_sql",
    "runbook",
    "runbook_history",
    "runbook_parameters",
    "sandbox",
    "stats",
    "status",
    "stop_on_signals",
    "validate",
    "verify",
]
