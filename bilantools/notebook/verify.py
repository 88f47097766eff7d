"""Verification and drift: does the live schema hold what the applied migrations create?"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import TargetLike
from bilantools.notebook import log
from bilantools.notebook.panel import Panel
from bilantools.notebook.render import Cell, table
from bilantools.render.diff import cells, short_diff
from bilantools.render.text import text_table

DIFF_STYLE = "white-space:pre;font-family:monospace"
PROBLEM_COLOURS = {"missing": "#c62828", "changed": "#c2185b"}
# `verify` attributes objects no migration file creates (e.g. the tracking table on a
# directory without the guide's 029) to "?".
UNOWNED = "? (no migration file)"
UNOWNED_NOTE = "created by no migration's SQL: bilantools' own tracking objects, or implicit ones"


class VerifyPanel(Panel):
    """Buttons "Verify" (per-migration summary and the problem rows) and "Drift" (objects no
    migration creates, created ones absent or changed).

    Both compare with a reference built by applying the same migrations to a scratch
    sandbox database, so they take a few seconds; they only read the target.
    """

    def __init__(self, target: TargetLike = None, migrations: Path | str = "migrations") -> None:
        super().__init__(target, migrations)
        self.verify_button = widgets.Button(description="Verify", icon="check", button_style="primary")
        self.drift_button = widgets.Button(description="Drift", icon="search")
        self.summary = widgets.HTML()
        self.problems = widgets.HTML()
        self.drift_html = widgets.HTML()
        self.on_click(self.verify_button, self.verify)
        self.on_click(self.drift_button, self.drift)
        self.widget = self.stack(
            [self.verify_button, self.drift_button], self.summary, self.problems, self.drift_html
        )

    def verify(self) -> None:
        result = commands.verify(target=self.target, project=self.migrations)
        headers = ("migration", "objects", "ok", "missing", "changed")
        summary = result.summary()
        rows = [
            [
                Cell(UNOWNED, title=UNOWNED_NOTE) if s["migration"] == "?" else s["migration"],
                s["objects"],
                s["ok"],
                Cell(str(s["missing"]), "color:#c62828;font-weight:bold" if s["missing"] else ""),
                Cell(str(s["changed"]), "color:#c2185b;font-weight:bold" if s["changed"] else ""),
            ]
            for s in summary
        ]
        attrs = [{"data-migration": str(s["migration"])} for s in summary]
        self.summary.value = "<b>Per migration</b>" + table(headers, rows, attrs, empty="nothing applied")
        bad = [r for r in result.rows if r.status != "ok"]
        problem_headers = ("migration", "kind", "name", "status", "expected", "found")
        problem_rows = [
            [
                r.migration,
                r.kind,
                r.name,
                Cell(r.status, f"color:{PROBLEM_COLOURS[r.status]}"),
                *cells(r.expected, r.found, width=60),
            ]
            for r in bad
        ]
        self.problems.value = "<b>Problems</b>" + table(problem_headers, problem_rows, empty="no problem")
        objects = len(result.rows)
        if result.ok:
            log.success(
                self.log, f"verify: OK, all {objects} object(s) as the applied migrations create them"
            )
        else:
            log.error(self.log, f"verify: {len(bad)} problem(s) among {objects} object(s)")
            log.block(self.log, self.problems.value, text_table(problem_headers, problem_rows))

    def drift(self) -> None:
        found = commands.drift(target=self.target, project=self.migrations)
        rows = [
            [kind, name, Cell("\n".join(short_diff(*found.definitions.get(name, ("", "")))), DIFF_STYLE)]
            for kind, names in found.lists().items()
            for name in names
        ]
        self.drift_html.value = "<b>Drift</b>" + table(
            ("drift", "object", "- expected / + found"), rows, empty="no drift"
        )
        if not rows:
            log.success(self.log, "drift: none, the schema is exactly what the applied migrations create")
            return
        counts = ", ".join(f"{len(names)} {kind}" for kind, names in found.lists().items())
        log.warning(self.log, f"drift: {counts}")
        for kind, name, _ in rows:
            log.warning(self.log, f"  {kind}: {name}")
