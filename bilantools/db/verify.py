"""Verification tables, drift and adoption: the live schema against what the files build.

The reference for "what the migrations create" is not a guess from the SQL: bilantools
builds it, by applying the same migrations to a scratch sandbox database and taking its
fingerprint, so implicit objects (primary key indexes, serial sequences, constraint names
PostgreSQL chose) are expected too. The static analysis says which migration created
each object, for the per-migration tables and for `detect`, which works from the files
alone because a hand-migrated database has no reliable history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bilantools.db.fingerprint import Fingerprint
from bilantools.db.invalid_indexes import InvalidIndex
from bilantools.db.provided import Presence
from bilantools.db.verify_scripts import ScriptCheck
from bilantools.source.analysis import Obj
from bilantools.source.graph import Analysis

Status = Literal["ok", "missing", "changed"]
ENGINE_ONLY = "schema_migration_events"  # the engine's own log: no migration creates it
# Fingerprint kinds that stand for schema objects (row counts are not objects).
OBJECT_KINDS = (
    "table",
    "view",
    "materialized view",
    "sequence",
    "column",
    "index",
    "constraint",
    "policy",
    "trigger",
    "function",
    "type",
    "extension",
)


@dataclass(frozen=True)
class VerifyRow:
    migration: str
    kind: str
    name: str
    status: Status
    expected: str = "present"
    found: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verification:
    target: str
    rows: list[VerifyRow] = field(default_factory=list)
    # A Sqitch project's verify scripts of the applied changes, in plan order (None: the
    # layout has no verify scripts, and --json has no "verify_scripts" key).
    scripts: list[ScriptCheck] | None = None
    # Every invalid index of the database (a failed concurrent build's, ours or not): reported,
    # not counted against `ok`, since a build running right now has one too.
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.rows) and all(s.ok for s in self.scripts or [])

    def summary(self) -> list[dict[str, Any]]:
        """Per migration: objects checked, ok, missing, changed."""
        per: dict[str, dict[str, Any]] = {}
        for r in self.rows:
            entry = per.setdefault(
                r.migration, {"migration": r.migration, "objects": 0, "ok": 0, "missing": 0, "changed": 0}
            )
            entry["objects"] += 1
            entry[r.status] += 1
        return [per[k] for k in sorted(per)]

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "target": self.target,
            "ok": self.ok,
            "rows": [r.as_dict() for r in self.rows],
            "summary": self.summary(),
        }
        if self.invalid_indexes:  # only then: the shape stays what scripts know
            shown["invalid_indexes"] = [i.as_dict() for i in self.invalid_indexes]
        if self.scripts is not None:
            shown["verify_scripts"] = [s.as_dict() for s in self.scripts]
        return shown


def owners(analysis: Analysis, reference: Fingerprint) -> dict[tuple[str, str], str]:
    """Which migration each object of the reference schema comes from.

    Named objects come from the migration whose SQL creates them (the last one that
    redefines them); implicit ones (a primary key's index, a serial's sequence) from the
    migration that creates their table.
    """
    by_name: dict[tuple[str, str], str] = {}
    tables: dict[str, str] = {}
    for version, effects in analysis.effects.items():
        for obj in effects.creates:
            key = _key(obj)
            by_name[key] = version
            if obj.key[0] == "relation":
                tables.setdefault(obj.name, version)
    result: dict[tuple[str, str], str] = {}
    for kind, name in reference.objects:
        if kind not in OBJECT_KINDS or ENGINE_ONLY in (name, _table_of(kind, name, reference)):
            continue
        if (kind, name) == ("extension", "plpgsql"):  # every database has it
            continue
        key = (kind, name.split("(")[0] if kind == "function" else name)
        owner = by_name.get(key) or by_name.get(("relation", name))
        if owner is None:
            table = _table_of(kind, name, reference)
            owner = tables.get(table) if table else None
        result[(kind, name)] = owner or ("engine" if _engine(kind, name, reference) else "?")
    return result


def verify_tables(
    target: str, live: Fingerprint, reference: Fingerprint, owner: dict[tuple[str, str], str]
) -> Verification:
    """One row per object the applied migrations create: ok, missing or changed."""
    result = Verification(target)
    for key in sorted(owner, key=lambda k: (owner[k], k)):
        kind, name = key
        expected = reference.objects[key]
        if key not in live.objects:
            result.rows.append(
                VerifyRow(owner[key], kind, name, "missing", expected="present", found="absent")
            )
        elif live.objects[key] != expected:
            result.rows.append(
                VerifyRow(
                    owner[key],
                    kind,
                    name,
                    "changed",
                    expected=reference.readable(key),
                    found=live.readable(key),
                )
            )
        else:
            result.rows.append(VerifyRow(owner[key], kind, name, "ok", found="present"))
    return result


def provided_rows(present: list[Presence]) -> list[VerifyRow]:
    """One row per object declared provided in [tool.bilantools] (migration and kind
    "provided", name the entry as written): ok when the target has it, else missing."""
    return [
        VerifyRow("provided", "provided", p.entry, "ok", found="present")
        if p.present
        else VerifyRow("provided", "provided", p.entry, "missing", found="absent")
        for p in present
    ]


DRIFT_KINDS = ("unexpected", "absent", "changed")


@dataclass(frozen=True)
class Drift:
    """Objects no applied migration creates (`unexpected`), created ones that are `absent`,
    and those whose definition differs (`changed`), each as "kind name"; `definitions`
    holds, per changed object, (expected, found) to show as a diff."""

    unexpected: list[str]
    absent: list[str]
    changed: list[str]
    definitions: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.unexpected) + len(self.absent) + len(self.changed)

    def lists(self) -> dict[str, list[str]]:
        """The three lists by kind (the --json keys before `definitions` was added)."""
        return {kind: getattr(self, kind) for kind in DRIFT_KINDS}

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = self.lists()
        shown["definitions"] = {
            name: {"expected": old, "found": new} for name, (old, new) in self.definitions.items()
        }
        return shown


def drift(live: Fingerprint, reference: Fingerprint) -> Drift:
    """Objects in the database that no migration creates, and created ones that are absent
    (a changed definition shows in both the verification table and here as 'changed')."""
    keys = [k for k in live.objects.keys() | reference.objects.keys() if k[0] in OBJECT_KINDS]
    changed = sorted(
        k
        for k in keys
        if k in live.objects and k in reference.objects and live.objects[k] != reference.objects[k]
    )
    return Drift(
        unexpected=sorted(f"{k} {n}" for k, n in keys if (k, n) not in reference.objects),
        absent=sorted(f"{k} {n}" for k, n in keys if (k, n) not in live.objects),
        changed=[f"{k} {n}" for k, n in changed],
        definitions={f"{k} {n}": (reference.readable((k, n)), live.readable((k, n))) for k, n in changed},
    )


@dataclass(frozen=True)
class Detection:
    shares: list[dict[str, Any]]  # per migration: version, name, objects, present, share
    suggested: str | None  # the version to pass to `baseline --to`, None when nothing is there
    # The history table and the versions it records applied, when the database has one.
    tracked: tuple[str, list[str]] | None = None

    def as_dict(self) -> dict[str, Any]:
        history = None
        if self.tracked is not None:
            table, applied = self.tracked
            history = {"table": table, "applied": len(applied), "last": applied[-1] if applied else None}
        return {"migrations": self.shares, "suggested_baseline": self.suggested, "tracked": history}


def detect(analysis: Analysis, live: Fingerprint, tracked: tuple[str, list[str]] | None = None) -> Detection:
    """How much of each migration is in a database migrated by hand, and where to baseline
    (nowhere when `tracked` says its history records applied migrations already).

    The suggestion is the last version V such that everything 1..V leaves behind (the
    net state, after later drops and renames) is present; the share per migration is
    measured against what it leaves behind at that point.
    """
    present = _live_names(live)
    order = list(analysis.effects)
    states: list[set[tuple[tuple[str, str], str]]] = []
    state: dict[tuple[str, str], str] = {}
    for version in order:
        effects = analysis.effects[version]
        for obj in effects.drops:
            state.pop(_key(obj), None)
        for obj in effects.creates:
            if obj.kind in ("rls", "role", "schema"):
                continue
            state[_key(obj)] = version
        states.append(set(state.items()))
    suggested = None
    for index, version in enumerate(order):
        expected = {key for key, _ in states[index]}
        if expected and expected <= present:
            suggested = version
    horizon = order.index(suggested) if suggested else -1
    shares = []
    for index, version in enumerate(order):
        at = states[max(index, horizon)]
        mine = {key for key, owner in at if owner == version}
        found = len(mine & present)
        shares.append(
            {
                "version": version,
                "name": analysis.migrations.find(version).name  # type: ignore[union-attr]
                if analysis.migrations.find(version)
                else "",
                "objects": len(mine),
                "present": found,
                "share": round(found / len(mine), 3) if mine else None,
            }
        )
    if tracked is not None and tracked[1]:
        suggested = None  # its history says what is applied: a baseline would rewrite it
    return Detection(shares, suggested, tracked)


def _engine(kind: str, name: str, reference: Fingerprint) -> bool:
    """The tracking table and functions the engine creates when no migration declares them."""
    if kind == "function":
        return name.split("(")[0] in (
            "migration_applied",
            "record_migration",
            "record_migration_failure",
            "get_migration_status",
        )
    return "schema_migrations" in (name, _table_of(kind, name, reference))


def _key(obj: Obj) -> tuple[str, str]:
    return ("relation", obj.name) if obj.key[0] == "relation" else (obj.kind, obj.name)


def _live_names(live: Fingerprint) -> set[tuple[str, str]]:
    """Fingerprint keys in the analysis' naming: relations unified, functions without arguments."""
    names = set()
    for kind, name in live.objects:
        if kind in ("table", "view", "materialized view", "sequence"):
            names.add(("relation", name))
        elif kind == "function":
            names.add(("function", name.split("(")[0]))
        elif kind in OBJECT_KINDS:
            names.add((kind, name))
    return names


def _table_of(kind: str, name: str, reference: Fingerprint) -> str | None:
    if kind in ("column", "constraint", "policy", "trigger"):
        return name.rsplit(".", 1)[0]
    if kind == "index":
        definition = reference.objects.get((kind, name), "")
        marker = "ONpublic."
        if marker in definition:
            return definition.split(marker, 1)[1].split("USING", 1)[0]
        return None
    if kind == "sequence" and name.endswith("_seq"):
        return name.rsplit("_", 2)[0]
    return None
