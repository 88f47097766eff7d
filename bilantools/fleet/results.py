"""A fleet rollout's results: each target's live state, then its outcome (`TargetRun`),
and the rollout's table, summary and exit code (`RolloutResult`).

Plain data, importing nothing of the rollout: the front door re-exports these types, and
the rollout itself is made of front-door calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# "stopped": was running when the rollout stopped; it stopped before its next migration.
Outcome = Literal["done", "failed", "skipped", "not-started", "refused", "stopped"]
# What a target is doing, for the live table: then its outcome once it ends.
State = Literal["waiting", "gated", "running"] | Outcome


@dataclass
class TargetRun:
    """One target of the rollout: its live state, then its outcome."""

    name: str
    target: str  # masked
    wave: str
    state: State = "waiting"
    current: str | None = None  # the migration it runs now
    started: float | None = None  # time.monotonic() when it started
    applied: int = 0  # migrations applied (rolled back, for rollback; applied, for status)
    failed: int = 0  # failed migrations or findings
    pending: int | None = None  # status and plan: migrations still to apply
    error: str | None = None
    duration_ms: int | None = None
    backup: str | None = None
    run_id: str | None = None
    gate: str | None = None  # while gated: the first reason
    lag_s: float | None = None  # the largest replica replay lag of the last gate reading

    @property
    def outcome(self) -> Outcome:
        live = ("waiting", "gated", "running")
        return "not-started" if self.state in live else self.state  # type: ignore[return-value]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": self.outcome,
            "applied": self.applied,
            "failed": self.failed,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "backup": self.backup,
            "target": self.target,
            "wave": self.wave,
            "run_id": self.run_id,
            "pending": self.pending,
            "lag_s": self.lag_s,
        }


@dataclass
class RolloutResult:
    rollout_id: str
    action: str
    targets: list[TargetRun] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for t in self.targets if t.outcome == outcome)

    @property
    def exit_code(self) -> int:
        """0 all done; 2 some refused and none failed; 1 otherwise."""
        if all(t.outcome == "done" for t in self.targets):
            return 0
        return 2 if self.count("refused") and not self.count("failed") else 1

    def summary(self) -> dict[str, Any]:
        outcomes = {o: self.count(o) for o in get_args(Outcome)}
        return {"targets": len(self.targets), **outcomes, "applied": sum(t.applied for t in self.targets)}

    def summary_line(self) -> str:
        counts = ", ".join(
            f"{n} {o}" for o, n in self.summary().items() if n and o not in ("targets", "applied")
        )
        return f"fleet {self.action} {self.rollout_id}: {len(self.targets)} target(s): {counts or 'none'}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "action": self.action,
            "targets": [t.as_dict() for t in self.targets],
            "summary": self.summary(),
        }


Watcher = Callable[[TargetRun], None]
