"""Ctrl-C while a run changes the database: cancel the statement, stop at a known point.

Python turns SIGINT into a KeyboardInterrupt raised at whatever bytecode runs: inside
psycopg's pipeline exit (the aborted transaction then makes the lock release fail with
25P02), or inside a finalizer, where Python prints it and carries on (the run went on to
finish). psycopg itself, on KeyboardInterrupt during a query, cancels it and re-raises,
leaving the transaction aborted and the pipeline half-read.

So while migrations run, SIGINT raises nothing: it is noted, and when the runner is
waiting on the server (`cancellable`) the running statement is cancelled from the
handler (libpq's PQcancel, over a connection of its own, returns once the server has
signalled the backend). The statement then fails with 57014, the runner's usual failure
path rolls the migration back, and the runner, seeing `received`, reports an interrupt
instead of a failure. Between statements the runner checks `received` itself.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


class Interrupts:
    """Context manager: SIGINT handled by the runner while inside (re-entrant).

    Until `defer()` a SIGINT still raises KeyboardInterrupt (nothing has changed yet, and
    `received` stays set in case the exception is swallowed); after it, SIGINT only sets
    `received` and cancels the running statement while `cancellable`. Outside the main
    thread signals cannot be caught, and SIGINT keeps Python's behaviour; a SIGINT the run
    was started with ignored (the ``&`` job of a script) stays ignored."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.received = False
        self._deferred = False
        self._armed = False
        self._depth = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> Interrupts:
        if (
            self._depth == 0
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) != signal.SIG_IGN
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._installed:
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            self._installed = self._deferred = False

    def defer(self) -> None:
        """From now on (until the outermost exit) SIGINT raises nothing: the runner stops."""
        self._deferred = True

    @contextmanager
    def cancellable(self) -> Iterator[None]:
        """While the server runs the runner's statements: SIGINT cancels the running one."""
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        if not self._deferred:
            raise KeyboardInterrupt
        if self._armed:
            self._cancel()

    def _cancel(self) -> None:
        import psycopg

        with suppress(psycopg.Error):  # the connection is gone: the runner finds out at its next read
            self.conn.cancel()
