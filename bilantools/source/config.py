"""Project settings for the checks, and per-statement ignore comments.

Settings live in the ``[tool.bilantools]`` table of the nearest ``pyproject.toml``, so a
project keeps them next to its other tool settings and in version control::

    [tool.bilantools]
    disable = ["drop-without-if-exists", "squawk:prefer-text-field"]  # "squawk" alone: all squawk rules
    provided = ["schema:auth", "function:auth.uid", "extension:pgcrypto"]  # exist outside the migrations
    squawk-after = "029"  # squawk's lock and rewrite rules only for later migrations
    layout = "dbmate"  # how the migrations are named (default: detected from the files)
    tracking-schema = "bilantools"  # where bilantools keeps its history (default: see below)
    keep-peer-history = true  # also write the layout's own tool's history table, in step
    placeholders = {schema = "app"}  # Flyway's ${schema} in scripts (values of one line)

    [tool.bilantools.gates]  # health gates of fleet rollouts (bilantools.db.health.GateSettings)
    max-replica-lag-s = 5.0

    [tool.bilantools.lock-retries]  # a migration's lock waits (bilantools.db.engine.retries)
    attempts = 5

``tracking-schema`` is the schema of bilantools' tracking objects (schema_migrations, its
event log and the guide's functions): "public" for our own layout (the guide's place),
"bilantools" for another tool's layout, whose own ``schema_migrations`` may sit in public.
``keep-peer-history`` (true, or the tool's name) keeps that tool's history table updated on
apply and rollback, in the same transaction as ours, so that a team can switch back.

``squawk-after`` is the line between history and new work: migrations up to that version
have run in production already (or build tables that were empty when they ran), so
advice on locks and rewrites no longer applies to them; every later migration gets it.

One statement's findings are switched off by a comment on the statement's first line or on
the ``--`` comment lines directly above it (a blank line ends that block), so the reason can
sit next to the exception instead of disabling a rule for the whole project::

    -- users is created empty by this very migration, no lock to fear:
    -- bilantools: ignore squawk:require-concurrent-index-creation, create-index-not-idempotent
    CREATE INDEX users_email ON users (email);
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bilantools.errors import InputError
from bilantools.source.files import MigrationSet
from bilantools.source.layouts import LAYOUTS, LayoutName

_KEYS = (
    "disable",
    "provided",
    "squawk-after",
    "layout",
    "placeholders",
    "tracking-schema",
    "keep-peer-history",
    "gates",
    "lock-retries",
)
# A schema name written plainly: quoted as an identifier, it means what it says.
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The tools whose history table bilantools can keep in step (`bilantools.db.peers.keeping`).
KEPT_PEERS = ("golang-migrate", "dbmate", "flyway")
NO_SQITCH = (
    "bilantools does not write Sqitch's registry (a change's row there goes with its tags, dependencies "
    "and events, all checked by Sqitch against the plan); leave the key out, and when switching back run "
    "`sqitch deploy --log-only` to record the deployed changes"
)
NATIVE_TRACKING_SCHEMA = "public"  # the guide's place, where migration 029 declares them
PEER_TRACKING_SCHEMA = "bilantools"  # out of the way of a peer tool's own schema_migrations
_IGNORE = re.compile(r"--\s*bilantools:\s*ignore\s+([\w:.-]+(?:\s*,\s*[\w:.-]+)*)", re.I)
_PROVIDED = re.compile(r"^[a-z][a-z_]*:\S(.*\S)?$")
PLACEHOLDER_NAME = re.compile(r"[A-Za-z0-9_.:-]+")  # what may stand between ${ and }


@dataclass(frozen=True)
class CheckConfig:
    disabled: frozenset[str] = frozenset()
    provided: frozenset[str] = frozenset()
    squawk_after: str | None = None  # a version as the layout writes it (read by check)
    layout: LayoutName | None = None  # None: detected from the files
    tracking_schema: str | None = None  # None: by layout (see `tracking_schema`)
    keep_peer_history: bool | str = False  # true: the layout's tool; or a tool's name
    placeholders: dict[str, str] = field(default_factory=dict)  # ${name} -> value (Flyway)

    def tracking_schema_for(self, layout: str) -> str:
        """Where the tracking objects of a project in `layout` live."""
        if self.tracking_schema is not None:
            return self.tracking_schema
        return NATIVE_TRACKING_SCHEMA if layout == "bilantools" else PEER_TRACKING_SCHEMA

    def peer_history_for(self, layout: str) -> str | None:
        """The tool whose history table is kept in step, for a project in `layout`;
        InputError when that cannot be done."""
        peer = layout if self.keep_peer_history is True else self.keep_peer_history or None
        if peer == "bilantools":
            raise InputError(
                "[tool.bilantools] keep-peer-history = true keeps the history of the layout's tool, and "
                "this project is in bilantools' own layout: name the tool, e.g. keep-peer-history = "
                '"golang-migrate"'
            )
        if peer == "sqitch":
            raise InputError(f"[tool.bilantools] keep-peer-history for a Sqitch project: {NO_SQITCH}")
        if (
            peer in ("golang-migrate", "dbmate")
            and self.tracking_schema_for(layout) == NATIVE_TRACKING_SCHEMA
        ):
            raise InputError(
                f'[tool.bilantools] keep-peer-history = {peer!r} with tracking-schema = "public": {peer}\'s '
                'schema_migrations and bilantools\' would be one table; set tracking-schema = "bilantools"'
            )
        return peer

    def squawk_order(self, found: MigrationSet) -> tuple[int, ...] | None:
        """The order of the ``squawk-after`` version in the set's layout (None: not set);
        InputError for a value that is not one of its versions."""
        if self.squawk_after is None:
            return None
        after = found.order_of(self.squawk_after)
        if after is None:
            raise InputError(
                f"[tool.bilantools] squawk-after {self.squawk_after!r} is not a {found.layout} version; "
                "write the version of the last migration that ran before squawk's advice applies"
            )
        return after


def load_config(start: Path) -> CheckConfig:
    """The settings of the nearest ``pyproject.toml`` in `start` or its parents.

    No file, or a file without ``[tool.bilantools]``, gives the defaults: a project does
    not need a configuration to be checked. Bad values raise InputError naming the fix.
    """
    path = _nearest(start)
    return _parse(path, _tool_table(path)) if path is not None else CheckConfig()


def settings_table(
    start: Path, name: str, keys: Iterable[str], problem: Callable[[str, Any], str | None]
) -> tuple[Path | None, dict[str, Any]]:
    """The nearest ``pyproject.toml`` and the values of its ``[tool.bilantools.<name>]``
    table by the snake_case names `keys` (written kebab-case there); InputError naming the
    file and the key for an unknown key or a value `problem` gives a reason against."""
    path, table = subtable(start, name)
    where = f"{path}: [tool.bilantools.{name}]"
    names = {key.replace("_", "-"): key for key in keys}
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise InputError(f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(names)}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        why = problem(names[key], value)
        if why:
            raise InputError(f"{where} {key} = {value!r} {why}")
        values[names[key]] = value
    return path, values


def subtable(start: Path, name: str) -> tuple[Path | None, dict[str, Any]]:
    """The nearest ``pyproject.toml`` and its ``[tool.bilantools.<name>]`` table (empty
    when absent); InputError when it is not a table."""
    path = _nearest(start)
    table = _tool_table(path) if path is not None else None
    found = (table or {}).get(name, {})
    if not isinstance(found, dict):
        raise InputError(
            f"{path}: tool.bilantools.{name} must be a table; write it as [tool.bilantools.{name}]"
        )
    return path, found


def _nearest(start: Path) -> Path | None:
    start = start.resolve()
    for directory in (start, *start.parents) if start.is_dir() else start.parents:
        path = directory / "pyproject.toml"
        if path.is_file():
            return path
    return None


def _tool_table(path: Path) -> dict[str, Any] | None:
    """``[tool.bilantools]`` of the file at `path`, None when it has none."""
    import tomllib  # only where a pyproject.toml is found

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path} cannot be read as TOML ({exc}); fix the file") from None
    tool = data.get("tool", {})
    table = tool.get("bilantools") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise InputError(f"{path}: tool.bilantools must be a table; write it as [tool.bilantools]")
    return table


def _parse(path: Path, table: dict[str, Any] | None) -> CheckConfig:
    if table is None:
        return CheckConfig()
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise InputError(
            f"{path}: [tool.bilantools] has unknown key(s) {', '.join(unknown)}; "
            f"the keys are {', '.join(_KEYS)}"
        )
    disabled = _strings(path, "disable", table.get("disable", []), '["drop-without-if-exists"]')
    provided = _strings(path, "provided", table.get("provided", []), '["schema:auth", "function:auth.uid"]')
    for entry in sorted(provided):
        if not _PROVIDED.match(entry):
            raise InputError(
                f"{path}: [tool.bilantools] provided entry {entry!r} is not 'kind:name'; "
                'write it like "schema:auth" or "function:auth.uid"'
            )
    after = table.get("squawk-after")
    if after is not None and not (isinstance(after, str) and after.strip()):
        raise InputError(
            f"{path}: [tool.bilantools] squawk-after must be a version string; "
            'write e.g. squawk-after = "029"'
        )
    layout = table.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise InputError(
            f"{path}: [tool.bilantools] layout {layout!r} is not a known layout; "
            f"write one of {', '.join(repr(name) for name in LAYOUTS)}, or leave it out to detect it"
        )
    schema = table.get("tracking-schema")
    if schema is not None and not (isinstance(schema, str) and _SCHEMA.match(schema)):
        raise InputError(
            f"{path}: [tool.bilantools] tracking-schema {schema!r} is not a plain schema name "
            '(lower-case letters, digits and _, at most 63); write e.g. tracking-schema = "bilantools"'
        )
    return CheckConfig(
        disabled=disabled,
        provided=provided,
        squawk_after=after.strip() if after else None,
        layout=LAYOUTS[layout].name if layout is not None else None,
        placeholders=_placeholders(path, table.get("placeholders", {})),
        tracking_schema=schema,
        keep_peer_history=_peer(path, table.get("keep-peer-history", False)),
    )


def _peer(path: Path, value: Any) -> bool | str:
    """keep-peer-history: true (the layout's tool), false, or a tool's name."""
    if value == "sqitch":
        raise InputError(f"{path}: [tool.bilantools] keep-peer-history = 'sqitch': {NO_SQITCH}")
    if isinstance(value, bool):
        return value
    if value in KEPT_PEERS:
        return str(value)
    raise InputError(
        f"{path}: [tool.bilantools] keep-peer-history must be true, false or one of "
        f"{', '.join(repr(n) for n in KEPT_PEERS)}; write e.g. keep-peer-history = true"
    )


def _placeholders(path: Path, value: Any) -> dict[str, str]:
    """The placeholders table: names as Flyway writes them, values of one line (a script's
    line numbers must stay those of the file)."""
    example = 'write e.g. placeholders = {schema = "app"}'
    if not isinstance(value, dict):
        raise InputError(f"{path}: [tool.bilantools] placeholders must be a table; {example}")
    for name, text in value.items():
        if not PLACEHOLDER_NAME.fullmatch(name):
            raise InputError(
                f"{path}: [tool.bilantools] placeholders has the name {name!r}, which cannot appear "
                f"as ${{name}}; use letters, digits and _ . : - ({example})"
            )
        if not isinstance(text, str) or "\n" in text or "\r" in text:
            raise InputError(
                f"{path}: [tool.bilantools] placeholders.{name} must be a string of one line; {example}"
            )
    return dict(value)


def _strings(path: Path, key: str, value: Any, example: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(
            f"{path}: [tool.bilantools] {key} must be a list of non-empty strings; "
            f"write e.g. {key} = {example}"
        )
    return frozenset(v.strip() for v in value)


def suppressed_rules(script_text: str, statement_line: int) -> frozenset[str]:
    """Rule ids switched off for the statement starting at 1-based `statement_line`."""
    if "bilantools" not in script_text:  # the common case: no need to split the file
        return frozenset()
    lines = script_text.split("\n")
    index = statement_line - 1
    candidates = [lines[index]] if 0 <= index < len(lines) else []
    above = index - 1
    while 0 <= above < len(lines) and lines[above].lstrip().startswith("--"):
        candidates.append(lines[above])
        above -= 1
    rules: set[str] = set()
    for line in candidates:
        for match in _IGNORE.finditer(line):
            rules.update(rule.strip().lower() for rule in match[1].split(","))
    return frozenset(rules)
