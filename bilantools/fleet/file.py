"""The fleet file: named targets with labels, and the waves a rollout runs them in.

A target's URL comes from an environment variable (``url_env``) or a pg_service.conf
entry (``service``), so the file can be committed: a URL literal (``url``) is accepted
only without a password. Every bad key or value is one `InputError` naming the file, the
key and the fix.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bilantools.errors import InputError, option

FLEET_FILE = "fleet.toml"
OnError = Literal["stop", "continue"]
TARGET_KEYS = ("url_env", "service", "url", "labels")
WAVE_KEYS = ("name", "targets", "labels", "parallel", "on_error")
DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class FleetTarget:
    """One database of the fleet, by name; where its URL comes from, never the URL's secret."""

    name: str
    labels: tuple[str, ...] = ()
    url_env: str | None = None
    service: str | None = None
    url: str | None = None

    def connection_string(self) -> str:
        """The URL (or libpq service string) to connect with, read now."""
        if self.url_env is not None:
            value = os.environ.get(self.url_env)
            if not value:
                raise InputError(
                    f"fleet target '{self.name}': environment variable {self.url_env} is not set; "
                    f"export it with the target's URL"
                )
            return value
        if self.service is not None:
            return f"service={self.service}"
        assert self.url is not None
        return self.url


@dataclass(frozen=True)
class Wave:
    """A group of targets run together: at most `parallel` at once; `on_error` = stop
    starts no new target once one failed, continue goes on with the others."""

    name: str
    targets: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    parallel: int = DEFAULT_PARALLEL
    on_error: OnError = "stop"


@dataclass(frozen=True)
class Fleet:
    """The targets (in file order) and the waves; a target belongs to the first wave
    that names it or one of its labels."""

    source: str
    targets: dict[str, FleetTarget]
    waves: tuple[Wave, ...]

    def members(self, wave: Wave) -> list[FleetTarget]:
        """The targets `wave` names, by name or label, in file order."""
        return [
            t for t in self.targets.values() if t.name in wave.targets or set(t.labels) & set(wave.labels)
        ]


def default_fleet_path(migrations: Path) -> Path:
    """``fleet.toml`` beside the pyproject.toml that holds the migrations' settings (the
    nearest one above the directory), else beside the directory."""
    start = migrations.absolute()
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory / FLEET_FILE
    return start.parent / FLEET_FILE


def load_fleet(path: Path) -> Fleet:
    """Read and check the fleet file at `path`."""
    if not path.is_file():
        raise InputError(
            f"no fleet file at {path}: write one ([targets.NAME] with url_env or service) or pass "
            f"{option('fleet', 'FILE')}, or name the databases with {option('db', 'URL')}"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    _known(path, "", data, ("targets", "waves"))
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, dict) or not raw_targets:
        raise InputError(f"{path}: no [targets.NAME] table; add one per database (url_env or service)")
    targets = {name: _target(path, name, value) for name, value in raw_targets.items()}
    raw_waves = data.get("waves")
    if raw_waves is None:
        waves: tuple[Wave, ...] = (Wave("all", tuple(targets)),)
    elif not isinstance(raw_waves, list) or not all(isinstance(w, dict) for w in raw_waves) or not raw_waves:
        raise InputError(
            f"{path}: waves must be [[waves]] tables (name, targets or labels, parallel, on_error)"
        )
    else:
        waves = tuple(_wave(path, i, w, targets) for i, w in enumerate(raw_waves))
    fleet = Fleet(str(path), targets, waves)
    placed = {t.name for w in waves for t in fleet.members(w)}
    for name in targets:
        if name not in placed:
            raise InputError(f"{path}: target '{name}' is in no wave; add it to a wave's targets or labels")
    return fleet


def _known(path: Path, where: str, table: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in table:
        if key not in keys:
            raise InputError(f"{path}: unknown key {where}{key}; the keys here are {', '.join(keys)}")


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f'{path}: {key} must be a list of names, e.g. ["tenant", "eu"]')
    return tuple(value)


def _target(path: Path, name: str, value: Any) -> FleetTarget:
    where = f"targets.{name}"
    if not isinstance(value, dict):
        raise InputError(f"{path}: {where} must be a table ([{where}] with url_env or service)")
    _known(path, where + ".", value, TARGET_KEYS)
    sources = [key for key in ("url_env", "service", "url") if key in value]
    if len(sources) != 1:
        raise InputError(
            f"{path}: {where} needs exactly one of url_env (an environment variable holding the URL) "
            f"or service (a pg_service.conf entry); it has {', '.join(sources) or 'neither'}"
        )
    for key in sources:
        if not isinstance(value[key], str) or not value[key].strip():
            raise InputError(f"{path}: {where}.{key} must be a non-empty string")
    if "url" in value and _has_password(value["url"]):
        raise InputError(
            f"{path}: {where}.url holds a password; never write one in the fleet file: put the URL in "
            f'an environment variable and write url_env = "{name.upper()}_URL"'
        )
    labels = _strings(path, f"{where}.labels", value.get("labels", []))
    return FleetTarget(name, labels, value.get("url_env"), value.get("service"), value.get("url"))


def _has_password(url: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    from bilantools.secrets import register_written, written_passwords

    register_written(url)  # the refusal must not show it either
    try:
        return "password" in conninfo_to_dict(url) or bool(written_passwords(url))
    except Exception:  # unreadable: whether it holds one is told by what was written
        return bool(written_passwords(url))


def _wave(path: Path, index: int, value: dict[str, Any], targets: dict[str, FleetTarget]) -> Wave:
    where = f"waves[{index}]"
    _known(path, where + ".", value, WAVE_KEYS)
    name = value.get("name", f"wave{index + 1}")
    if not isinstance(name, str) or not name:
        raise InputError(f"{path}: {where}.name must be a non-empty string")
    named = _strings(path, f"{where}.targets", value.get("targets", []))
    labels = _strings(path, f"{where}.labels", value.get("labels", []))
    for target in named:
        if target not in targets:
            raise InputError(
                f"{path}: {where}.targets names '{target}', which is no [targets.NAME]; "
                f"the targets are {', '.join(targets)}"
            )
    if not named and not labels:
        raise InputError(f"{path}: {where} ('{name}') selects nothing; give it targets or labels")
    parallel = value.get("parallel", DEFAULT_PARALLEL)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise InputError(f"{path}: {where}.parallel must be a whole number of 1 or more, e.g. 4")
    on_error = value.get("on_error", "stop")
    if on_error not in ("stop", "continue"):
        raise InputError(f'{path}: {where}.on_error must be "stop" or "continue", not {on_error!r}')
    return Wave(name, named, labels, parallel, on_error)
