"""The CLI's commands, each imported on first use: starting `bilantools status` must not
import what `fleet`, `backup` or `runbook` need (each command module imports its own)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping

import click


class LazyCommands(MutableMapping[str, click.Command]):
    """A click group's `commands`: names to commands, a command given as "module:attribute"
    imported when it is first looked up. Listing the names imports nothing."""

    def __init__(self, where: Mapping[str, str]) -> None:
        self._commands: dict[str, click.Command | str] = dict(where)

    def __getitem__(self, name: str) -> click.Command:
        found = self._commands[name]
        if isinstance(found, str):
            module, _, attribute = found.partition(":")
            found = getattr(importlib.import_module(module), attribute)
            if not isinstance(found, click.Command):
                raise TypeError(f"{module}.{attribute} is not a click command")
            self._commands[name] = found
        return found

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)
