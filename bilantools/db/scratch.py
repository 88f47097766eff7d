"""Scratch files of a run, gone on every way out, signals included.

A password handed to a client program goes into a passfile (``ps`` shows command lines
to every user). The passfile lives in a directory made for the run (mode 0700, in
TMPDIR) that is removed when the run ends: finished, failed or stopped. Python runs
``finally`` blocks for SIGINT (KeyboardInterrupt) but not for SIGTERM or SIGHUP, which
end the process at once; `stop_on_signals` turns those into `Stopped`, so that every
cleanup runs for them too (only SIGKILL can leave files behind).

Both exceptions are raised at whatever bytecode the main thread runs when the signal
comes, a cleanup or the few steps between starting something and the ``try`` that undoes
it included. Such steps run `held`: a signal waits until they are done.

A signal the run was started with ignored stays ignored, as POSIX programs do: a shell
ignores SIGINT for the ``&`` jobs of a script, nohup ignores SIGHUP. Python itself then
installs no KeyboardInterrupt.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from bilantools.errors import InputError

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
HELD = (signal.SIGINT, *SIGNALS)


class Stopped(BaseException):
    """The run was stopped by a signal. Not an `Exception`: no ``except Exception`` may
    swallow it on its way out."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended


@contextmanager
def private_dir() -> Iterator[Path]:
    """A directory only this user can enter (0700), removed with all it holds."""
    path = None
    try:
        with held():  # made and known, or not made
            try:
                path = Path(tempfile.mkdtemp(prefix="bilantools-"))
            except OSError as exc:
                raise InputError(
                    f"cannot make a private temporary directory in {tempfile.gettempdir()} "
                    f"({exc.strerror}); free space there or set TMPDIR to a writable directory"
                ) from None
        yield path
    finally:
        if path is not None:
            with held():
                shutil.rmtree(path, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    """Write `text` into a new 0600 file (a full disk fails here, inside the private
    directory that is removed anyway)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(
            f"cannot write a temporary file in {path.parent.parent} ({exc.strerror}); free space there or "
            "set TMPDIR to a writable directory"
        ) from None


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Stopped` in the main thread; the previous
    handlers come back on the way out. Elsewhere than the main thread, nothing changes
    (Python allows handlers only there), nor for a signal the run was started with
    ignored (nohup: SIGHUP)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = [signum for signum in SIGNALS if signal.getsignal(signum) != signal.SIG_IGN]
    previous = {signum: signal.signal(signum, _stop) for signum in kept}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop(signum: int, frame: FrameType | None) -> Any:
    for other in SIGNALS:  # once: a second signal must not break off the cleanup
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def held() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP wait: their handlers run (and raise
    KeyboardInterrupt or `Stopped`) on the way out, once the block is done. For the steps
    a signal must not cut in two: a start and the bookkeeping that lets it be undone, a
    cleanup. Signals ignored, or met outside the main thread, are left as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers: dict[int, Any] = {}  # the handlers `note` stands in for
    noted: list[int] = []
    inside = True

    def note(signum: int, frame: FrameType | None) -> Any:
        if inside:
            noted.append(signum)
        elif callable(handlers.get(signum)):  # left in place by a signal raised while restoring
            return handlers[signum](signum, frame)

    try:
        for signum in HELD:
            if callable(signal.getsignal(signum)):
                handlers[signum] = signal.signal(signum, note)  # the old handler runs first if due
        yield
    finally:
        inside = False
        for held_signum, handler in handlers.items():
            signal.signal(held_signum, handler)
        if noted and callable(handlers.get(noted[0])):
            handlers[noted[0]](noted[0], None)
