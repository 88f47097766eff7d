"""The one interface every way of running units implements: batched transactions
(`batched`), one statement at a time (`autocommit`), inside a transaction that is rolled
back (`dryrun`), or not at all, recording what would be sent (`recording`)."""

from __future__ import annotations

from typing import Protocol

from bilantools.db.engine.results import Action, Step
from bilantools.db.engine.session import Unit


class Executor(Protocol):
    def run(self, batch: list[Unit], action: Action, durable: bool, started: float) -> list[Step]:
        """Run `batch` (units in the order given) and return a step per unit run. A
        failure raises: `Stopped` with the steps committed before it, or the error
        itself when nothing of the batch committed. `durable`: the batch's last commit
        waits for the disk (and so flushes every earlier commit)."""
        ...


class Stopped(Exception):
    """A batch stopped at a failure: `steps` are the units it committed before."""

    def __init__(self, steps: list[Step], error: BaseException) -> None:
        super().__init__(str(error))
        self.steps = steps
        self.error = error
