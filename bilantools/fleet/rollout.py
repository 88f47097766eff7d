"""`Rollout`: one front-door command over the selected targets, wave by wave.

The project is read and checked once, before any thread starts; each wave then runs its
targets in a pool of `parallel` threads, each target through the usual `commands.*` call
(its own connection, migration lock, automatic backup and run id). A target's migrations
are its own transactions, so a failure elsewhere never leaves it half-done.

Before an apply or rollback starts on a target, the health gates of `db.health` are read
on it (settings from ``[tool.bilantools.gates]``, read once): a gated target waits with
backoff, shown as "gated" with the reasons, and is "skipped" after the wait limit.

Stopping (a failure under ``on_error = "stop"``, or SIGTERM/Ctrl-C of the main thread)
sets one event: no new target starts, and a running apply or rollback stops before its
next migration. The progress hook raises `StopRequested` at a migration's start, and only
once every migration it saw start has been reported done (durable): what it reports
applied is exactly what committed, and nothing after it was sent.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Literal, get_args

from bilantools import commands
from bilantools.commands import Progress, Project, RunOptions, Target
from bilantools.db.health import GateSettings, Health, load_gate_settings, wait_until_healthy
from bilantools.errors import BilanToolsError, InputError, LockTimeoutError, RefusedError
from bilantools.fleet.results import Outcome, RolloutResult, State, TargetRun, Watcher
from bilantools.fleet.selection import Member, Stage
from bilantools.secrets import redact

Command = Literal["apply", "rollback", "status", "plan", "verify", "drift", "validate", "backup"]
COMMANDS: tuple[str, ...] = get_args(Command)
# The actions that change a database wait for its health gates first.
GATED = ("apply", "rollback")


class StopRequested(Exception):
    """The rollout stopped: raised by a target's progress hook between two migrations."""


class Rollout:
    """Runs `action` over `stages`; `watch` is called (under a lock) on every change of a
    target's state, from the thread that runs it. `rollout_id`: given, else the options',
    else a new uuid; every target's run writes it in its events."""

    def __init__(
        self,
        *,
        project: Project,
        stages: list[Stage],
        action: str,
        options: RunOptions = commands.DEFAULTS,
        watch: Watcher | None = None,
        rollout_id: str | None = None,
    ) -> None:
        if action not in COMMANDS:
            raise InputError(f"fleet cannot run '{action}': choose one of {', '.join(COMMANDS)}")
        self.project = project
        self.stages = stages
        self.action = action
        self.options = options.but(rollout_id=rollout_id or options.rollout_id or str(uuid.uuid4()))
        self.watch = watch
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.gates: GateSettings | None = None
        self.result = RolloutResult(str(self.options.rollout_id), action)
        self._runs = [
            [TargetRun(m.name, m.target.masked, stage.name) for m in stage.members] for stage in stages
        ]
        self.result.targets = [run for runs in self._runs for run in runs]

    def run(self) -> RolloutResult:
        """Every wave in turn; a stop (failure under on_error=stop, a signal) starts no more."""
        self._prepare()
        previous: list[tuple[TargetRun, Member]] = []
        for stage, runs in zip(self.stages, self._runs, strict=True):
            if self.stop.is_set() or not self._wave_healthy(previous, runs):
                break
            self._wave(stage, runs)
            previous = [(r, m) for r, m in zip(runs, stage.members, strict=True) if r.outcome == "done"]
        return self.result

    def _prepare(self) -> None:
        """Read and check the project once, before any thread (a Project's lazy reads are
        not made for threads racing on them); refuse an apply the project forbids."""
        _ = self.project.migrations, self.project.settings
        if self.action in GATED:
            self.gates = load_gate_settings(self.project.directory.absolute())
        if self.action in ("verify", "drift", *GATED):
            _ = self.project.analysis
        if self.action == "apply":
            errors = commands.apply_check(project=self.project, options=self.options)
            if errors:
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                raise InputError(
                    f"refusing to apply to the fleet: {errors[0].one_line()}{more}; run 'bilantools apply "
                    "--check-only' to list them, fix them; no database was touched"
                )

    def _wave(self, stage: Stage, runs: list[TargetRun]) -> None:
        pool = ThreadPoolExecutor(max_workers=stage.parallel, thread_name_prefix=f"fleet-{stage.name}")
        try:
            futures = [
                pool.submit(self._target, run, member, stage)
                for run, member in zip(runs, stage.members, strict=True)
            ]
            for future in as_completed(futures):
                future.result()
        except BaseException:  # a signal in the main thread: the running targets stop cleanly
            self.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _target(self, run: TargetRun, member: Member, stage: Stage) -> None:
        if self.stop.is_set():
            return  # stays "waiting": reported not-started
        run.started = time.monotonic()
        state: Outcome = "done"
        try:
            if not self._healthy(run, member.target):
                return
            self._set(run, "running")
            self._execute(run, member.target)
        except StopRequested:
            state, run.error = "stopped", "stopped before its next migration: the rollout was stopped"
        except (RefusedError, InputError, LockTimeoutError) as exc:
            state, run.error = "refused", str(exc)
        except BilanToolsError as exc:
            state, run.error = "failed", str(exc)
            run.failed = max(run.failed, 1)
            run.applied = len((exc.run or {}).get("steps", [])) or run.applied
        except Exception as exc:  # a bug must not take the other targets down: reported
            state, run.error = "failed", redact(f"internal error: {exc!r}")
        self._end(run, state, stage)

    def _end(self, run: TargetRun, state: Outcome, stage: Stage) -> None:
        assert run.started is not None
        if state == "done" and run.failed:
            state = "failed"
        run.duration_ms = int((time.monotonic() - run.started) * 1000)
        if state == "failed" and stage.on_error == "stop":
            self.stop.set()
        run.current = None
        self._set(run, state)

    def _healthy(self, run: TargetRun, target: Target) -> bool:
        """Wait for the target's gates (changing actions only); False when it was skipped
        (or, the rollout stopping meanwhile, left not started)."""
        if self.gates is None:
            return True

        def on_wait(health: Health) -> None:
            run.gate = health.reasons[0] if health.reasons else None
            run.lag_s = _lag(health)
            self._set(run, "gated")

        health = wait_until_healthy(
            lambda: target.connect("bilantools fleet gates"),
            self.gates,
            self._touched(target),
            on_wait,
            self.stop,
        )
        run.lag_s, run.gate = _lag(health), None
        if health.ok:
            return True
        if self.stop.is_set():
            self._set(run, "waiting")  # reported not-started
            return False
        run.error = "gated: " + "; ".join(health.reasons)
        run.duration_ms = int((time.monotonic() - (run.started or 0)) * 1000)
        self._set(run, "skipped")
        return False

    def _wave_healthy(self, previous: list[tuple[TargetRun, Member]], runs: list[TargetRun]) -> bool:
        """Before a wave: the targets the previous wave changed must pass their gates
        again (their replicas caught up, nothing left waiting on a lock), so that a canary
        on another server holds the next wave; while they do not, the wave's targets are
        shown gated. False (the rollout stops, the wave not started) after the wait limit."""
        if self.gates is None:
            return True
        for done, member in previous:

            def on_wait(health: Health, done: TargetRun = done) -> None:
                for run in runs:
                    run.gate = f"wave held by {done.name}: {health.reasons[0] if health.reasons else 'gated'}"
                    run.lag_s = _lag(health)
                    self._set(run, "gated")

            try:
                health = wait_until_healthy(
                    functools.partial(member.target.connect, "bilantools fleet gates"),
                    self.gates,
                    frozenset(),
                    on_wait,
                    self.stop,
                )
            except BilanToolsError as exc:
                health = Health(False, [str(exc)], {})
            if not health.ok:
                for run in runs:
                    run.gate, run.error = (
                        None,
                        f"not started: {done.name}, changed in the wave before, "
                        + ("; ".join(health.reasons)),
                    )
                    self._set(run, "waiting")  # reported not-started
                self.stop.set()
                return False
        for run in runs:
            if run.state == "gated":
                run.gate = None
                self._set(run, "waiting")
        return True

    def _touched(self, target: Target) -> frozenset[str]:
        """The existing tables the target's next migrations (or rollbacks) touch: a vacuum
        on one of them gates it."""
        rollback = self.action == "rollback"
        plan = commands.rollback_plan if rollback else commands.plan
        pending = plan(target=target, project=self.project, options=self.options)
        return self.project.analysis.touched_tables([m.version for m in pending], rollback)

    def _set(self, run: TargetRun, state: State) -> None:
        with self._lock:
            run.state = state
            if self.watch is not None:
                self.watch(run)

    def _execute(self, run: TargetRun, target: Target) -> None:
        """The front-door call of the action on one target, its figures into `run`."""
        action, project, options = self.action, self.project, self.options
        if action in ("apply", "rollback"):
            command = commands.apply if action == "apply" else commands.rollback
            result = command(target=target, project=project, options=options, progress=self._hook(run))
            run.applied = 0 if result.dry_run else len(result.steps)
            run.backup, run.run_id = result.backup, result.run_id
        elif action == "status":
            status = commands.status(target=target, project=project)
            run.applied, run.failed = status.count("applied"), status.count("failed")
            run.pending = status.count("pending") + status.count("outdated")
            run.error = (
                f"{run.failed} failed migration(s): run repair after fixing them" if run.failed else None
            )
        elif action == "plan":
            run.pending = len(commands.plan(target=target, project=project, options=options))
        elif action == "verify":
            verification = commands.verify(target=target, project=project)
            bad = [r for r in verification.rows if r.status != "ok"]
            scripts = [s for s in verification.scripts or [] if not s.ok]
            run.failed = len(bad) + len(scripts)
            run.error = f"{len(bad)} object(s) missing or changed, {len(scripts)} verify script(s) failed"
            run.error = None if verification.ok else run.error
        elif action == "drift":
            found = commands.drift(target=target, project=project)
            run.failed = found.total
            run.error = ", ".join(f"{len(v)} {k}" for k, v in found.lists().items() if v) or None
        elif action == "validate":
            findings = commands.validate(target=target, project=project)
            run.failed = len(findings)
            run.error = findings[0].one_line() if findings else None
        else:
            run.backup = str(commands.backup(target=target, out=options.backup_dir).file)

    def _hook(self, run: TargetRun) -> Callable[[Progress], None]:
        """The progress hook of one target: its live state, and the stop between migrations."""
        counts = {"start": 0, "done": 0}

        def hook(progress: Progress) -> None:
            if progress.event == "start":
                if self.stop.is_set() and counts["start"] == counts["done"]:
                    raise StopRequested
                counts["start"] += 1
                run.current = progress.migration.label
            elif progress.event == "done":
                counts["done"] += 1
                run.applied = counts["done"]
                run.current = None
            self._set(run, "running")

        return hook


def _lag(health: Health) -> float | None:
    """The largest replay lag of the target's streaming replicas, if it has any."""
    lags = [
        r["replay_lag_s"] for r in health.readings.get("replicas", []) if r.get("replay_lag_s") is not None
    ]
    return max(lags, default=None)
