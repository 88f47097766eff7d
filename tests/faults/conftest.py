"""The fault suite: concurrency, killed runners, server crashes, blocking, bad input,
properties, secrets, privileges and injection.

Every test here is marked `faults`. `make test` runs the fast scale (a few rounds of
each fault); `make faults` sets BILANTOOLS_FAULTS=full and runs the counts the README's
reliability section quotes. Each test records what it exercised with `figures.add`; the
totals are printed at the end of the run, and they are the figures the README quotes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator

import pytest

FULL = os.environ.get("BILANTOOLS_FAULTS", "").lower() == "full"


def scale(fast: int, full: int) -> int:
    """How many rounds a fault test runs: `full` under `make faults`, else `fast`."""
    return full if FULL else fast


class Figures:
    """Counts per fault kind, summed over the tests of the run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, what: str, count: int = 1) -> None:
        self.counts[what] += count


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    yield _FIGURES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES.counts:
        return
    terminalreporter.section(f"fault suite figures ({'full' if FULL else 'fast'} scale)")
    for what, count in sorted(_FIGURES.counts.items()):
        terminalreporter.write_line(f"{what}: {count}")
