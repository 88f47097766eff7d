"""The dependency graph of a migrations directory, and the ordering problems it shows.

An inferred edge A -> B means B uses an object that A creates first; declared edges come
from ``-- depends:``. Findings: forward references (B uses what only a later migration
creates: it cannot apply in order), unresolved references (created by no migration and
not provided by PostgreSQL or the project's allowlist), declared dependencies on a later
number, gaps in the numbering, and rollbacks that do not undo their migration.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from bilantools.source.analysis import Effects, Obj, Use, analyse_script, salvage_script
from bilantools.source.builtins import builtins
from bilantools.source.files import Migration, MigrationSet, Script
from bilantools.source.findings import Finding
from bilantools.source.statements import SqlSyntaxError

# Objects a later migration can replace (CREATE OR REPLACE, DROP + CREATE): the rollback must
# then put the earlier definition back. Re-creating a table IF NOT EXISTS replaces nothing.
REDEFINABLE = ("function", "view", "materialized view", "trigger", "policy", "constraint")
# What a rollback must drop (or revert) when its migration creates it.
UNDOABLE = (
    "table",
    "view",
    "materialized view",
    "sequence",
    "index",
    "type",
    "schema",
    "extension",
    "function",
    "trigger",
    "policy",
    "column",
    "constraint",
    "rls",
    "role",
)


@dataclass
class Analysis:
    """The directory's effects, graph and findings."""

    migrations: MigrationSet
    effects: dict[str, Effects] = field(default_factory=dict)
    rollbacks: dict[str, Effects] = field(default_factory=dict)
    inferred: dict[str, set[str]] = field(default_factory=dict)  # version -> versions it needs
    declared: dict[str, set[str]] = field(default_factory=dict)
    forward: set[tuple[str, str]] = field(default_factory=set)  # (later creator, user)
    findings: list[Finding] = field(default_factory=list)

    def touched_tables(self, versions: Iterable[str], rollback: bool = False) -> frozenset[str]:
        """The tables that already exist which the scripts of `versions` alter, drop, fill,
        empty, index or read (their rollbacks' with `rollback`): a vacuum running on one of
        them makes the migration wait, so the health gates look at these."""
        scripts = self.rollbacks if rollback else self.effects
        chosen = [e for e in map(scripts.get, versions) if e is not None]
        tables: set[str] = set()
        for e in chosen:
            tables |= {o.name for o in (*e.alters, *e.drops) if o.kind == "table"}
            tables |= {u.obj.name for u in e.uses if u.obj.kind == "table"}
            tables |= set(e.owned.values()) | set(e.seeds) | e.deletes
        created = {o.name for e in chosen for o in e.creates if o.kind == "table"}
        return frozenset(tables - created)

    def to_dot(self) -> str:
        """Graphviz source: inferred edges solid, declared-only dashed, forward references red."""
        lines = ["digraph migrations {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
        for m in self.migrations:
            lines.append(f'  "{m.version}" [label="{m.version}\\n{m.name}"];')
        for source, target, how in sorted(self.edges()):
            style = ' [style=dashed, color="gray40"]' if how == "declared" else ""
            lines.append(f'  "{source}" -> "{target}"{style};')
        for creator, user in sorted(self.forward):
            lines.append(f'  "{creator}" -> "{user}" [color=red, fontcolor=red, label="forward reference"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """One line per migration: what it needs, and how that is known."""
        lines = []
        for m in self.migrations:
            needs = sorted(self.inferred.get(m.version, set()) | self.declared.get(m.version, set()))
            parts = []
            for dep in needs:
                how = [
                    w
                    for w, known in (("inferred", self.inferred), ("declared", self.declared))
                    if dep in known[m.version]
                ]
                parts.append(f"{dep} ({'+'.join(how)})")
            forward = sorted(c for c, u in self.forward if u == m.version)
            tail = f"  FORWARD REFERENCE to {', '.join(forward)}" if forward else ""
            lines.append(f"{m.version} {m.name}: needs {', '.join(parts) or 'nothing'}{tail}")
        return "\n".join(lines) + "\n"

    def edges(self) -> set[tuple[str, str, str]]:
        """(from, to, how) with how 'inferred', 'declared' or 'both'."""
        result = set()
        for version in self.effects:
            inferred, declared = self.inferred.get(version, set()), self.declared.get(version, set())
            for dep in inferred | declared:
                how = (
                    "both"
                    if dep in inferred and dep in declared
                    else ("inferred" if dep in inferred else "declared")
                )
                result.add((dep, version, how))
        return result


def analyse(
    migrations: MigrationSet, provided: frozenset[str] = frozenset(), rollbacks: bool = True
) -> Analysis:
    """Analyse every migration (and, with `rollbacks`, every rollback) of `migrations`."""
    result = Analysis(migrations)
    for m in migrations:
        result.effects[m.version] = _effects(m.script)
        if m.rollback is not None and rollbacks:
            result.rollbacks[m.version] = _effects(m.rollback)
        result.declared[m.version] = set(m.depends)
    position = {m.version: i for i, m in enumerate(migrations)}
    order = {m.version: m.order for m in migrations}
    first: dict[tuple[str, str], str] = {}
    for m in migrations:
        effects = result.effects[m.version]
        for new, old in effects.renames.items():  # the renamed table's columns keep existing
            for kind, name in list(first):
                if kind == "column" and name.startswith(f"{old}."):
                    first.setdefault(("column", f"{new}.{name[len(old) + 1 :]}"), m.version)
        for obj in effects.creates:
            first.setdefault(obj.key, m.version)
    known_tables = {name for kind, name in first if kind == "relation"}
    # Functions and types of an extension are unknown here: trust them once one is created.
    if any(kind == "extension" for kind, _ in first):
        provided = provided | {"extension-objects"}
    for m in migrations:
        result.inferred[m.version] = set()
        reported: set[tuple[str, str]] = set()
        for use in result.effects[m.version].uses:
            creator = first.get(use.obj.key) or (
                first.get(("relation", use.obj.name)) if use.obj.kind == "type" else None
            )
            if creator is None:
                if use.obj.key not in reported and not _provided(use.obj, known_tables, provided):
                    reported.add(use.obj.key)
                    result.findings.append(_unresolved(m, use))
            elif position[creator] < position[m.version]:
                result.inferred[m.version].add(creator)
            elif creator != m.version and use.obj.key not in reported:
                reported.add(use.obj.key)
                if use.obj.kind == "column" and _table_is_later(use.obj, first, position, m.version):
                    continue  # the table's own forward reference says it all
                result.forward.add((creator, m.version))
                result.findings.append(_forward(m, use, migrations.find(creator)))
        effects = result.effects[m.version]
        for obj in [*effects.creates, *effects.alters, *effects.drops]:  # changes what others made
            creator = first.get(obj.key)
            if creator is not None and position[creator] < position[m.version]:
                result.inferred[m.version].add(creator)
        for dep in sorted(m.depends):
            if order[dep] > m.order:
                result.findings.append(
                    Finding(
                        "declared-dependency-order",
                        "warning",
                        str(m.path),
                        None,
                        f"{m.path.name} declares a dependency on {dep}, a later number: it runs out of "
                        "numbering order",
                        f"renumber {m.path.name} after {dep}, or drop the declaration",
                    )
                )
    result.findings.extend(_gaps(migrations))
    for m in migrations:
        if m.version in result.rollbacks:
            result.findings.extend(_inverse(m, result.effects, result.rollbacks[m.version], first, provided))
    return result


def _effects(script: Script) -> Effects:
    """A script's effects; for a syntax error (which `check` reports) only what the
    statements that parse create (see `salvage_script`)."""
    try:
        return analyse_script(script)
    except SqlSyntaxError:
        return salvage_script(script)


def _table_is_later(
    column: Obj, first: dict[tuple[str, str], str], position: dict[str, int], version: str
) -> bool:
    creator = first.get(("relation", column.name.rsplit(".", 1)[0]))
    return creator is not None and position[creator] > position[version]


def _provided(obj: Obj, known_tables: set[str], provided: frozenset[str]) -> bool:
    """PostgreSQL itself, the project's allowlist, or a column of a table no migration makes."""
    b = builtins()
    schema, _, short = obj.name.rpartition(".")
    if f"{obj.kind}:{obj.name}" in provided or (schema and f"schema:{schema}" in provided):
        return True
    if obj.kind == "column":
        return obj.name.rsplit(".", 1)[0] not in known_tables
    if schema in ("pg_catalog", "information_schema"):
        return True
    if obj.kind in ("function", "type") and "extension-objects" in provided:
        return True
    if schema:
        return False
    return {
        "table": short in b["relations"],
        "function": short in b["functions"],
        "type": short in b["types"],
        "schema": short in b["schemas"],
    }.get(obj.kind, False)


def _unresolved(m: Migration, use: Use) -> Finding:
    schema = use.obj.name.rpartition(".")[0]
    if schema and use.obj.kind != "column":
        hint = (
            f"no migration creates schema {schema}: if the database provides it (a hosting "
            f'provider\'s schema), add "schema:{schema}" to provided in [tool.bilantools]'
        )
    else:
        hint = (
            f"create it in an earlier migration, or if it exists outside the migrations add "
            f'"{use.obj.kind}:{use.obj.name}" to provided in [tool.bilantools]'
        )
    where = " (in a function body)" if use.deferred else ""
    return Finding(
        "unresolved-reference",
        "warning",
        str(m.path),
        use.line,
        f"{use.obj} is used{where} but no migration creates it and PostgreSQL does not "
        f"provide it (statement: {_excerpt(use.statement)})",
        hint,
    )


def _forward(m: Migration, use: Use, creator: Migration | None) -> Finding:
    later = creator.path.name if creator else "a later migration"
    if use.deferred:
        return Finding(
            "forward-reference-in-body",
            "warning",
            str(m.path),
            use.line,
            f"a function body in {m.path.name} uses {use.obj}, first created by {later}: "
            "calling it fails until that migration is applied",
            "move the function to that migration or later",
        )
    return Finding(
        "forward-reference",
        "error",
        str(m.path),
        use.line,
        f"{m.path.name} uses {use.obj}, first created by {later}: it cannot apply in order "
        f"(statement: {_excerpt(use.statement)})",
        f"move the statement to {later} or after it, or create {use.obj} earlier",
    )


def _gaps(migrations: MigrationSet) -> list[Finding]:
    """Holes between whole versions (1, 2, 4: no 3); dotted versions (1.1) are in between
    on purpose."""
    whole = sorted((m.order[0], m) for m in migrations if len(m.order) == 1)
    width = max((len(m.version) for m in migrations), default=3)
    findings = []
    for (low, _), (high, m) in itertools.pairwise(whole):
        if high - low > 1:
            missing = ", ".join(str(n).zfill(width) for n in range(low + 1, min(high, low + 4)))
            more = ", ..." if high - low > 4 else ""
            findings.append(
                Finding(
                    "numbering-gap",
                    "info",
                    str(m.path),
                    None,
                    f"no migration numbered {missing}{more} before {m.path.name}",
                    "nothing to do if the numbers were skipped on purpose",
                )
            )
    return findings


def _inverse(
    m: Migration,
    effects: dict[str, Effects],
    rollback: Effects,
    first: dict[tuple[str, str], str],
    provided: frozenset[str],
) -> list[Finding]:
    """Does the rollback drop (or revert) what the migration creates, and only that?

    Objects provided outside the migrations (the tracking table the engine owns, the
    project's allowlist) are not the rollback's to drop.
    """
    assert m.rollback is not None
    done = effects[m.version]
    if done.broken or rollback.broken:  # a syntax error: what either does is unknown
        return []
    file, name = str(m.rollback.path), m.rollback.path.name
    findings: list[Finding] = []

    def warn(rule: str, line: int | None, message: str, hint: str) -> None:
        findings.append(Finding(rule, "warning", file, line, message, hint))

    created_tables = {o.name for o in done.creates if o.kind == "table" and first.get(o.key) == m.version}
    for obj, line in sorted(done.creates.items()):
        owner = Obj("table", obj.table) if obj.table else obj
        if obj.kind not in UNDOABLE or f"{owner.kind}:{owner.name}" in provided:
            continue
        if done.drops.get(obj, 0) > line:
            continue  # gone (dropped, or renamed) by the end of the migration itself
        if done.table_of(obj) in created_tables:
            continue  # goes with its table, about which the finding (if any) is
        if first.get(obj.key) not in (None, m.version):
            if obj.kind in REDEFINABLE and obj not in rollback.creates:
                verb = "drops it instead of restoring" if rollback.dropped(obj) else "does not restore"
                warn(
                    "rollback-incomplete",
                    None,
                    f"{m.path.name} redefines {obj} (line {line}) but its rollback {verb} the previous "
                    f"definition from {first[obj.key]}",
                    f"re-create the previous definition of {obj} in {name}",
                )
        elif not rollback.dropped(obj) and not _dropped_with_table(obj, done, rollback):
            warn(
                "rollback-incomplete",
                None,
                f"{m.path.name} creates {obj} (line {line}) but its rollback does not drop it",
                f"add {obj.undo_sql()}; to {name}",
            )
    for table, rows in sorted(done.seeds.items()):
        if f"table:{table}" in provided:
            continue
        if table not in rollback.deletes and not rollback.dropped(Obj("table", table)):
            warn(
                "rollback-incomplete",
                None,
                f"{m.path.name} inserts {'rows' if rows < 0 else f'{rows} row(s)'} into {table} but "
                "its rollback neither deletes them nor drops the table",
                f"delete the seeded rows of {table} in {name}",
            )
    created_keys = {o.key for o in done.creates} | {o.key for o in done.drops} | {o.key for o in done.alters}
    for obj, line in sorted(rollback.drops.items()):
        if obj.key not in created_keys and obj.kind in UNDOABLE:
            warn(
                "rollback-drops-foreign",
                line,
                f"the rollback drops {obj}, which {m.path.name} does not create",
                f"drop {obj} in the rollback of the migration that creates it",
            )
    return findings


def _dropped_with_table(obj: Obj, done: Effects, rollback: Effects) -> bool:
    """An index dropped because its table is dropped by the rollback."""
    table = done.table_of(obj)
    return table is not None and rollback.dropped(Obj("table", table))


def _excerpt(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
