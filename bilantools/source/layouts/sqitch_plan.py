"""Reading a ``sqitch.plan`` as Sqitch writes and reads it (App::Sqitch::Plan, syntax 1.0.0).

The plan starts with pragmas (``%syntax-version``, ``%project``, ``%uri``) up to the first
empty line; then one line per change, ``name [dependencies] timestamp planner <email> #
note``, and one per tag, ``@tag timestamp planner <email> # note``, which marks the change
above it. Blank lines and ``#`` comments may appear anywhere. The plan's order is the
order changes deploy in: timestamps are information, never a sort key.

A change name may appear again once a tag separates it from its first appearance (a
reworked change): the earlier instance is then known as ``name@tag``, its scripts are
``deploy/name@tag.sql`` and so on, for the first tag after it whose deploy script exists
(else the first tag after it), as Sqitch resolves it.

Sqitch refuses a plan with a malformed line, so every such line becomes an error finding
with its line number and the fix; nothing is skipped silently. Dependencies are checked as
Sqitch checks them: a required change must be planned earlier; a requirement on another
project (``other:change``) is outside this plan and is an error unless the project
declares it provided; a conflict (``!change``) with a change planned earlier can never be
satisfied by deploying the plan in order, so it is an error too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from bilantools.source.findings import Finding

PLAN_FILE = "sqitch.plan"
# The `provided` entry that declares a change of another Sqitch project present.
PROVIDED_KIND = "sqitch"
_PUNCT = re.escape("-!\"#$%&'()*+,./:;<=>?@[\\]^`{|}~")
# App::Sqitch::Plan's name rule: no leading or trailing punctuation (but _), no blank, ':',
# '@' or '#', and no symbolic-reference suffix such as '^2' or '~1' at the end.
NAME = rf"(?![{_PUNCT}])(?:(?![~/=%^][0-9]+(?:$|[ \t]))[^ \t:@#])+(?<![{_PUNCT}])\b"
FULL_NAME = re.compile(rf"{NAME}\Z")  # a whole text that is a name
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"
_LINE = re.compile(
    rf"""^[ \t]*
    (?:(?P<tag>@)|[ \t]*(?P<operator>[+-])[ \t]*)?
    (?P<name>{NAME})[ \t]*
    (?:\[(?P<dependencies>[^\]]+)\][ \t]*)?
    (?:(?P<timestamp>{_TIMESTAMP})[ \t]*)?
    (?:(?P<planner_name>[^<]+)[ \t]+<(?P<planner_email>[^>]+)>)?
    $""",
    re.X,
)
_ANY_TIMESTAMP = re.compile(_TIMESTAMP)
_PRAGMA = re.compile(
    rf"^[ \t]*%[ \t]*(?P<name>[^{_PUNCT}](?:[^ \t=]*?[^{_PUNCT} \t])?)(?:[ \t]*=[ \t]*(?P<value>.+))?\Z"
)
_DEPENDENCY = re.compile(
    rf"""\A(?P<conflict>!?)(?:(?P<project>{NAME}):)?
    (?:(?P<id>[0-9a-f]{{40}})|(?P<change>{NAME})(?:@(?P<tag>{NAME}))?|@(?P<only_tag>{NAME}))\Z""",
    re.X,
)
_RESERVED = frozenset({"ROOT", "HEAD", "FIRST", "LAST"})
_SHA1 = re.compile(r"^[0-9a-f]{40}")
_NAME_RULE = (
    "names must not begin with punctuation, contain '@', ':' or '#', "
    "or end in punctuation or in digits following punctuation"
)
_LINE_SHAPE = "write it as 'name [dependencies] YYYY-MM-DDTHH:MM:SSZ Planner Name <email> # note'"


@dataclass(frozen=True)
class Dependency:
    """One entry of a change's ``[...]`` list, as Sqitch parses it."""

    text: str  # as written, with its '!' if any
    conflict: bool
    project: str | None  # the other project of 'project:change', None for this plan's
    change: str | None
    tag: str | None
    change_id: str | None  # a 40-hex change ID given instead of a name

    @property
    def key(self) -> str:
        """What it names within its project: 'change', 'change@tag', '@tag' or the ID."""
        name = (self.change or "") + (f"@{self.tag}" if self.tag else "")
        return name or self.change_id or ""

    def as_string(self) -> str:
        """Sqitch's own spelling without the '!' (its change ID text uses it)."""
        return f"{self.project}:{self.key}" if self.project else self.key


@dataclass
class Change:
    """One change line of the plan."""

    name: str
    line: int
    requires: tuple[Dependency, ...]
    conflicts: tuple[Dependency, ...]
    timestamp: str
    planner: str  # "Name <email>", as Sqitch formats the planner
    note: str
    tags: list[str] = field(default_factory=list)  # the tags marking this change (no '@')
    rework_tags: list[str] = field(default_factory=list)  # set when a later line reworks it
    suffix: str = ""  # "@tag" for the earlier instance of a reworked change

    @property
    def key(self) -> str:
        """The change as Sqitch's ``--to`` and a dependency name it: 'name' or 'name@tag'."""
        return self.name + self.suffix


@dataclass
class Plan:
    """A parsed plan: its pragmas, its changes in plan order, its tags, its problems."""

    path: Path
    project: str | None = None
    uri: str | None = None
    changes: list[Change] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)  # tag (no '@') -> index of its change
    findings: list[Finding] = field(default_factory=list)

    @cached_property
    def instances(self) -> dict[str, list[int]]:
        """Per change name, the positions of its instances (several for a reworked one);
        read once the plan is complete."""
        found: dict[str, list[int]] = {}
        for position, change in enumerate(self.changes):
            found.setdefault(change.name, []).append(position)
        return found

    def index_of(self, key: str) -> int | None:
        """The position of 'name', 'name@tag' or '@tag' (the change a tag marks), as
        Sqitch's ``--to`` reads them; None when the plan has no such change or tag."""
        if key.startswith("@"):
            return self.tags.get(key[1:])
        name, _, tag = key.partition("@")
        if tag:
            end = self.tags.get(tag)
            if end is None:
                return None
            return next((i for i in range(end, -1, -1) if self.changes[i].name == name), None)
        return next((i for i in self.instances.get(name, []) if self.changes[i].key == name), None)

    def error(self, line: int | None, message: str, hint: str) -> None:
        self.findings.append(Finding("sqitch-plan", "error", str(self.path), line, message, hint))


def parse_plan(path: Path, text: str, provided: frozenset[str] = frozenset()) -> Plan:
    """The plan of `text` (read from `path`); each problem is an error finding naming its
    line. `provided` holds the ``sqitch:project:change`` entries that declare changes of
    other projects present."""
    plan = Plan(path)
    lines = text.split("\n")
    body_from = _pragmas(plan, lines)
    if plan.project is None:
        plan.error(None, f"{path.name} has no %project pragma", "add '%project=<name>' at its top")
    _body(plan, lines, body_from)
    _check_dependencies(plan, provided)
    return plan


def _pragmas(plan: Plan, lines: list[str]) -> int:
    """Read the pragmas at the top; the index of the first line after them."""
    for index, raw in enumerate(lines):
        stripped = raw.strip()
        if not stripped:
            return index + 1
        if stripped.startswith("#"):
            continue
        match = _PRAGMA.match(raw.partition("#")[0].rstrip(" \t"))
        if match is None:
            plan.error(
                index + 1,
                f"'{stripped}' is not a pragma, and no empty line separates the pragmas from the changes",
                "put an empty line between the pragmas (%project=...) and the first change",
            )
            return index
        name, value = match["name"], match["value"]
        if name == "project":
            if value is None or not FULL_NAME.match(value):
                plan.error(index + 1, f"invalid project name '{value or ''}': {_NAME_RULE}", "rename it")
            else:
                plan.project = value
        elif name == "uri":
            plan.uri = value
    return len(lines)


def _body(plan: Plan, lines: list[str], start: int) -> None:
    since_tag: dict[str, int] = {}  # changes since the last tag -> their line
    named: dict[str, Change] = {}  # the latest instance of each name
    for index in range(start, len(lines)):
        number, raw = index + 1, lines[index]
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        line, _, note = raw.partition("#")  # Sqitch: the first '#' starts the note
        line, note = line.rstrip(" \t"), _unescape(note.lstrip(" \t"))
        match = _LINE.match(line)
        if match is None or (match["timestamp"] is None and _ANY_TIMESTAMP.search(line)):
            what = "tag" if line.lstrip().startswith("@") else "change"
            plan.error(number, f"invalid {what} line '{line.strip()}': {_NAME_RULE}", _LINE_SHAPE)
            continue
        name = match["name"]
        label = f"@{name}" if match["tag"] else name
        missing = [
            what
            for what, value in (
                ("timestamp", match["timestamp"]),
                ("planner name and email", match["planner_name"]),
            )
            if value is None
        ]
        if missing:
            plan.error(number, f"'{label}' has no {' and no '.join(missing)}", _LINE_SHAPE)
            continue
        if name in _RESERVED:
            plan.error(number, f"'{label}' is a reserved name (ROOT, HEAD, FIRST, LAST)", "rename it")
            continue
        if _SHA1.match(name):
            plan.error(number, f"'{label}' could be confused with a SHA-1 change ID", "rename it")
            continue
        if match["operator"] == "-":
            plan.error(
                number,
                f"'-{name}' asks Sqitch to revert a change from the plan, which bilantools does not do",
                f"remove the line and run 'bilantools rollback --to' to revert {name}",
            )
            continue
        planner = f"{match['planner_name']} <{match['planner_email']}>"  # as Sqitch keeps it
        if match["tag"]:
            _tag(plan, number, name, match["dependencies"])
            since_tag.clear()
            continue
        if name in since_tag:
            plan.error(
                number,
                f"change '{name}' duplicates its declaration on line {since_tag[name]} with no tag between",
                f"rename it, or tag the plan before reworking {name} ('sqitch rework')",
            )
            continue
        requires, conflicts = _dependencies(plan, number, match["dependencies"] or "")
        change = Change(name, number, requires, conflicts, match["timestamp"], planner, note)
        earlier = named.get(name)
        if earlier is not None:
            _rework(plan, earlier)
        named[name] = change
        since_tag[name] = number
        plan.changes.append(change)


def _tag(plan: Plan, number: int, name: str, dependencies: str | None) -> None:
    if not plan.changes:
        plan.error(number, f"tag '@{name}' comes before any change", "put the tag below the change it marks")
    elif name in plan.tags:
        line = next(c.line for c in plan.changes if name in c.tags)
        plan.error(number, f"tag '@{name}' is declared twice (its change is on line {line})", "rename one")
    elif dependencies:
        plan.error(number, f"tag '@{name}' has dependencies", "remove the [...] list from the tag line")
    else:
        plan.tags[name] = len(plan.changes) - 1
        plan.changes[-1].tags.append(name)


def _rework(plan: Plan, earlier: Change) -> None:
    """Mark `earlier` as reworked by the change being added: its tags are the tags from it
    up to the end of the plan read so far; its scripts carry the first of them whose
    deploy script exists (else the first), as Sqitch names them."""
    start = next(i for i, c in enumerate(plan.changes) if c is earlier)
    earlier.rework_tags = [tag for change in plan.changes[start:] for tag in change.tags]
    deploy = plan.path.parent / "deploy"
    head, _, base = earlier.name.rpartition("/")
    folder = deploy / head if head else deploy
    chosen = next(
        (t for t in earlier.rework_tags if (folder / f"{base}@{t}.sql").is_file()), earlier.rework_tags[0]
    )
    earlier.suffix = f"@{chosen}"


def _dependencies(
    plan: Plan, number: int, text: str
) -> tuple[tuple[Dependency, ...], tuple[Dependency, ...]]:
    requires: list[Dependency] = []
    conflicts: list[Dependency] = []
    for item in text.split():
        match = _DEPENDENCY.match(item)
        if match is None:
            plan.error(
                number,
                f"'{item}' is not a valid dependency",
                "write 'change', 'change@tag', '@tag', 'project:change' or '!change' (a conflict)",
            )
            continue
        dep = Dependency(
            item,
            bool(match["conflict"]),
            match["project"] if match["project"] != plan.project else None,
            match["change"],
            match["tag"] or match["only_tag"],
            match["id"],
        )
        (conflicts if dep.conflict else requires).append(dep)
    return tuple(requires), tuple(conflicts)


def _check_dependencies(plan: Plan, provided: frozenset[str]) -> None:
    """Sqitch's rules: a requirement is planned earlier (or, in another project, declared
    provided); a conflict never names a change planned earlier."""
    for position, change in enumerate(plan.changes):
        for dep in change.requires:
            problem = _requirement(plan, position, dep, provided)
            if problem is not None:
                plan.error(change.line, f"change '{change.name}' {problem[0]}", problem[1])
        for dep in change.conflicts:
            if dep.project is not None or dep.change_id is not None:
                continue  # deployed or not, only the other project's registry can say
            at = position_of(plan, dep.key, position)
            if at is not None and at < position:
                plan.error(
                    change.line,
                    f"change '{change.name}' conflicts with '{dep.key}' (line {plan.changes[at].line}), "
                    "which the plan deploys before it: Sqitch refuses to deploy it while that one is "
                    "deployed, and bilantools deploys the plan in order",
                    f"remove '!{dep.key}' or move '{change.name}' so that it replaces {dep.key} (rework it)",
                )


def _requirement(
    plan: Plan, position: int, dep: Dependency, provided: frozenset[str]
) -> tuple[str, str] | None:
    """(problem, fix) for a requirement that cannot be met, else None."""
    if dep.project is not None:
        entry = f"{PROVIDED_KIND}:{dep.project}:{dep.key}"
        if entry in provided:
            return None
        return (
            f"requires '{dep.as_string()}', a change of another Sqitch project, which this plan "
            "cannot deploy",
            f'deploy project {dep.project} first and add "{entry}" to provided in '
            "[tool.bilantools] of pyproject.toml",
        )
    if dep.change_id is not None:
        return (
            f"requires change ID {dep.change_id}, which bilantools does not resolve",
            "name the change instead of its ID",
        )
    at = position_of(plan, dep.key, position)
    if at is None:
        return f"requires unknown change '{dep.key}'", "fix the dependency or add that change to the plan"
    if at == position:
        return "requires itself", f"remove '{dep.key}' from its dependencies"
    if at > position:
        return (
            f"is planned {at - position} change(s) before its requirement '{dep.key}' "
            f"(line {plan.changes[at].line}); Sqitch refuses such a plan",
            f"move it below line {plan.changes[at].line}",
        )
    return None


def position_of(plan: Plan, key: str, position: int) -> int | None:
    """Where the change `key` names stands, seen from the change at `position`: the last
    instance of a name planned before it (a reworked name has several), else itself, else
    its first instance after it; a tag named in `key` must come before `position`."""
    name, at, tag = key.partition("@")
    if at:
        found = plan.index_of(key)
        marked = plan.tags.get(tag)
        if found is None or marked is None:
            return None
        return found if marked < position else None  # Sqitch: unknown until its tag is seen
    instances = plan.instances.get(name, [])
    earlier = [i for i in instances if i < position]
    if earlier:
        return earlier[-1]
    return position if position in instances else next(iter(instances), None)


def change_ids(plan: Plan) -> dict[str, str] | None:
    """Each change's Sqitch change ID (the ``change_id`` of its registry), by key, computed
    as App::Sqitch::Plan::Change does: the SHA-1 of ``"change <length>\\0" + info``, where
    info holds the project, the URI, the name, the previous change's ID, the planner, the
    date, the requirements, the conflicts and the note. None when the plan has errors or a
    %uri this function cannot canonicalise as Perl's URI module does (see `_canonical`)."""
    if plan.findings or plan.project is None:
        return None
    uri = _canonical(plan.uri) if plan.uri else ""
    if uri is None:
        return None
    ids: dict[str, str] = {}
    parent = None
    for change in plan.changes:
        lines = [f"project {plan.project}", *([f"uri {uri}"] if uri else []), f"change {change.name}"]
        lines += [*([f"parent {parent}"] if parent else []), f"planner {change.planner}"]
        lines.append(f"date {change.timestamp}")
        if change.requires:
            lines.append("requires\n  + " + "\n  + ".join(d.as_string() for d in change.requires))
        if change.conflicts:
            lines.append("conflicts\n  - " + "\n  - ".join(d.as_string() for d in change.conflicts))
        if change.note:
            lines += ["", change.note]
        info = "\n".join(lines).encode("utf-8")
        parent = hashlib.sha1(b"change %d\0" % len(info) + info, usedforsecurity=False).hexdigest()
        ids[change.key] = parent
    return ids


def _canonical(uri: str) -> str | None:
    """`uri` as Perl's ``URI->canonical`` writes an http(s) URI (scheme and host in lower
    case, no default port, '/' for an empty path); None for any other URI, and for one with
    a query, a fragment, user info or %-escapes, whose canonical forms are not reproduced."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or any(c in uri for c in "%?#@") or not parts.hostname:
        return None
    if ":" in parts.hostname:  # an IPv6 address
        return None
    default = {"http": 80, "https": 443}[scheme]
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{scheme}://{parts.hostname}{port}{parts.path or '/'}"


def _unescape(note: str) -> str:
    """A note as Sqitch keeps it: '\\n', '\\r' and '\\\\' written in the plan decoded."""
    return re.sub(r"\\([\\nr])", lambda m: {"n": "\n", "r": "\r", "\\": "\\"}[m[1]], note)
