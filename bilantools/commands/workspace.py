"""The local workspace: the sandbox server and the runbooks' executions.

Part of the front door: see `bilantools.commands`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.db.sandbox import Sandbox
from bilantools.session import TargetLike, resolve_target

if TYPE_CHECKING:
    from bilantools.runbooks import RunRecord


def sandbox(*, home: Path | str | None = None, pg_bin: Path | str | None = None) -> Sandbox:
    """The local sandbox server (started on demand by `resolve_target`)."""
    return Sandbox(home, pg_bin)


def runbook(
    *,
    name: str,
    target: TargetLike = None,
    parameters: dict[str, Any] | None = None,
    notebooks: Path | str = "notebooks",
    runs: Path | str = "runs",
) -> RunRecord:
    """Execute runbook `name` (e.g. "02") against the target with papermill; the executed
    copy is kept under `runs` even when a cell fails."""
    from bilantools import runbooks

    return runbooks.run(name, resolve_target(target=target), parameters, notebooks, runs)


def runbook_history(*, runs: Path | str = "runs") -> list[dict[str, Any]]:
    """The runs kept under `runs`, newest first."""
    from bilantools import runbooks

    return runbooks.history(runs)


def runbook_parameters(*, pairs: list[str]) -> dict[str, Any]:
    """Runbook parameters from KEY=VALUE texts (values read as JSON when they can be)."""
    from bilantools import runbooks

    return runbooks.parse_parameters(pairs)
