"""Lock retries: how often and how long a migration waits for a lock before it gives up.

A DDL statement that waits for its table lock makes every later query on that table
queue behind it, so the engine never waits long (lock_timeout). When the wait times out
(SQLSTATE 55P03), a transactional migration is rolled back, and after a pause run again
with a longer lock_timeout: the blocker (often a long transaction) may have finished, and
production traffic got through between attempts. This is GitLab's `with_lock_retries`
and strong_migrations' `lock_timeout_retries`. Settings, in ``pyproject.toml``::

    [tool.bilantools.lock-retries]
    attempts = 5              # tries per migration; 1 = no retry
    growth = 2.0              # each attempt waits this many times longer than the one before
    max-lock-timeout = "20s"  # ... but never longer than this (unless the first already is)
    pause = "3s"              # the sleep between two attempts

The first attempt waits the migration's lock_timeout: its ``-- lock-timeout:`` header,
else the run's (``--lock-timeout``, 5s by default); attempt k waits that times
growth^(k-1), capped by max-lock-timeout. So with the defaults: 5s, 10s, 20s, 20s, 20s.
A lock_timeout of 0 (no limit) never times out and so is never retried.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from bilantools.source.headers import DURATION_HINT, Limits, duration_ms, parse_duration


@dataclass(frozen=True)
class LockRetries:
    attempts: int = 5
    growth: float = 2.0
    max_lock_timeout: str = "20s"
    pause: str = "3s"

    @property
    def pause_s(self) -> float:
        return (duration_ms(self.pause) or 0) / 1000

    def lock_timeout(self, first: str | None, attempt: int) -> str | None:
        """The lock_timeout of attempt `attempt` (1-based) when the first waits `first`."""
        base = None if first is None else duration_ms(first)
        if not base or attempt <= 1:  # None: the server's setting; 0: no limit
            return first
        cap = max(duration_ms(self.max_lock_timeout) or 0, base)
        grown = min(int(base * self.growth ** (attempt - 1)), cap)
        return f"{grown // 1000}s" if grown % 1000 == 0 else f"{grown}ms"

    def limits(self, limits: Limits, attempt: int) -> Limits:
        return replace(limits, lock_timeout=self.lock_timeout(limits.lock_timeout, attempt))


def load_lock_retries(start: Path) -> LockRetries:
    """``[tool.bilantools.lock-retries]`` of the nearest ``pyproject.toml`` from `start`;
    the defaults for every key left out. Bad keys or values: InputError naming the fix."""
    from bilantools.source.config import settings_table

    _, values = settings_table(start, "lock-retries", [item.name for item in fields(LockRetries)], _problem)
    values = {n: parse_duration(v) if isinstance(v, str) else v for n, v in values.items()}
    return LockRetries(**values)


def _problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be setting `name` (None: it can)."""
    if name == "attempts":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100
        return None if ok else "must be a whole number from 1 (no retry) to 100"
    if name == "growth":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 10
        return None if ok else "must be a number from 1 (the same wait each time) to 10"
    if not isinstance(value, str) or parse_duration(value) is None:
        return f"is not a duration; {DURATION_HINT}"
    return None
