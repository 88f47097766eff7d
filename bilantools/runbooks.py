"""Runbooks: the curated notebooks executed with papermill, each run kept as an audit record.

`run("02_apply_stepwise", parameters)` executes ``notebooks/02_apply_stepwise.ipynb``
against the database the user named (--db, DATABASE_URL; without one, a scratch database
of the run, as in JupyterLab: see bilantools/notebook/runbook.py) and writes
``runs/<UTC time>_<notebook>.ipynb`` (the executed
copy, with papermill's record of parameters, timings and any error), an HTML rendering
beside it, and ``.json`` with the outcome. The database reaches the kernel through the
``DATABASE_URL`` environment variable, never as a parameter: papermill stores
parameters verbatim in the executed copy. Every text of the executed copy is passed
through the password masking before it is kept.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bilantools.db.target import Target
from bilantools.errors import BilanToolsError, InputError
from bilantools.secrets import redact

DEFAULT_NOTEBOOKS = "notebooks"
DEFAULT_RUNS = "runs"
_SECRET_KEYS = re.compile(r"password|passwd|secret|token|dsn|url|conninfo", re.I)


# How a runbook says a change cell did not run (bilantools.notebook.runbook.Runbook.may_change):
# the run is then recorded "skipped", not "succeeded".
SKIPPED = "not run: "


class RunbookFailed(BilanToolsError):
    """A cell of the runbook raised; the executed copy shows where."""

    exit_code = 1


class RunbookSkipped(BilanToolsError):
    """Every cell ran, but a change was refused (a database other than the sandbox without
    yes=True): as the CLI's refusal without --yes."""

    exit_code = 2


@dataclass(frozen=True)
class RunRecord:
    notebook: str
    executed: Path
    html: Path | None
    meta: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "executed": str(self.executed),
            "html": str(self.html) if self.html else None,
            **self.meta,
        }


def find(name: str, notebooks: Path | str = DEFAULT_NOTEBOOKS) -> Path:
    """`name` as given, or the one notebook whose name starts with it ("02" finds 02_apply_stepwise)."""
    directory = Path(notebooks)
    exact = directory / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if exact.is_file():
        return exact
    matches = sorted(p for p in directory.glob(f"{name}*.ipynb") if not p.name.startswith("."))
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.stem for p in sorted(directory.glob("*.ipynb"))) or "none"
    what = "matches several" if matches else "matches no"
    raise InputError(f"runbook '{name}' {what} notebook in {directory}; choose one of: {known}")


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs; values read as JSON when they can be (numbers, booleans), else text."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"parameter '{pair}' is not key=value; write e.g. -p to=017")
        if _SECRET_KEYS.search(key):
            raise InputError(
                f"parameter '{key}' looks like a connection or a secret: papermill stores parameters in "
                "the executed copy; pass the database through DATABASE_URL or --db instead"
            )
        try:
            parameters[key] = json.loads(value)
        except ValueError:
            parameters[key] = value
    return parameters


def run(
    name: str,
    target: Target,
    parameters: dict[str, Any] | None = None,
    notebooks: Path | str = DEFAULT_NOTEBOOKS,
    runs: Path | str = DEFAULT_RUNS,
) -> RunRecord:
    """Execute a runbook against `target`; the executed copy is kept even when a cell fails."""
    import papermill

    source = find(name, notebooks)
    out = Path(runs)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    executed = out / f"{stamp}_{source.stem}.ipynb"
    env_before = os.environ.get("DATABASE_URL")
    if named(target):
        os.environ["DATABASE_URL"] = target.conninfo
    else:  # the rule of notebook/runbook.py: no DATABASE_URL, a scratch database of the run
        os.environ.pop("DATABASE_URL", None)
    started = time.perf_counter()
    error: str | None = None
    kernel_log = executed.with_suffix(".kernel.log")
    try:
        with _stderr_into(kernel_log):
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters=parameters or {},
                kernel_name="python3",
                progress_bar=False,
                cwd=str(source.parent),
            )
    except papermill.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count} ({exc.ename}): {redact(' '.join(str(exc.evalue).split()))}"
    except ValueError as exc:  # papermill's word for a notebook it cannot run (no kernel, no language)
        raise InputError(f"cannot run {source}: {redact(str(exc))}; open it in Jupyter and save it") from None
    finally:
        if env_before is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = env_before
    duration = round(time.perf_counter() - started, 1)
    _scrub(executed)
    html = _html(executed)
    skipped = _skipped(executed)
    meta = {
        "started_at": stamp,
        "target": target.masked if named(target) else "scratch database in the sandbox (dropped at the end)",
        "parameters": parameters or {},
        "outcome": "failed" if error else "skipped" if skipped else "succeeded",
        "error": error,
        "skipped": skipped,
        "duration_s": duration,
        "kernel_log": kernel_log.name if kernel_log.exists() else None,
    }
    sidecar = executed.with_suffix(".json")
    sidecar.write_text(json.dumps({"notebook": source.stem, **meta}, indent=1), encoding="utf-8")
    record = RunRecord(source.stem, executed, html, meta)
    if error:
        raise RunbookFailed(f"runbook {source.stem} failed at {error}; executed copy: {executed}")
    if skipped:
        raise RunbookSkipped(
            f"runbook {source.stem} ran, but {len(skipped)} change(s) did not: {skipped[0]}; "
            f"executed copy: {executed}"
        )
    return record


def _skipped(executed: Path) -> list[str]:
    """The changes the runbook's cells refused to make (their "not run: ..." lines)."""
    if not executed.exists():
        return []
    document = json.loads(executed.read_text(encoding="utf-8"))
    lines = []
    for cell in document.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            lines += [
                line.removeprefix(SKIPPED) for line in "".join(text).splitlines() if line.startswith(SKIPPED)
            ]
    return lines


def named(target: Target) -> bool:
    """Whether the user named the database (--db or DATABASE_URL): the runbook acts on it.
    Otherwise (the sandbox by default) it works on a scratch database of its own, as it
    does when opened in JupyterLab without DATABASE_URL."""
    return target.source != "sandbox"


@contextmanager
def _stderr_into(log: Path) -> Iterator[None]:
    """The kernel inherits our standard error: its warnings and the tracebacks ipykernel
    prints while shutting down would reach the terminal, unmasked. While it runs, file
    descriptor 2 goes into a pipe; what came through is kept, masked, in `log` (0600)."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(65536):
                chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer here is closed: the reader sees its end
        os.close(saved)
        reader.join(timeout=10)
        text = b"".join(chunks).decode("utf-8", errors="replace")
        if text.strip():
            log.write_text(redact(text), encoding="utf-8")
            log.chmod(0o600)


def history(runs: Path | str = DEFAULT_RUNS) -> list[dict[str, Any]]:
    """Past runs, newest first, from their .json records."""
    records = []
    for path in sorted(Path(runs).glob("*.json"), reverse=True):
        try:
            records.append(
                {**json.loads(path.read_text(encoding="utf-8")), "executed": str(path.with_suffix(".ipynb"))}
            )
        except (OSError, ValueError):
            continue
    return records


def _scrub(executed: Path) -> None:
    """Mask any password that reached an output (a URL printed by a cell, a traceback).

    The masking runs on every string of the notebook's JSON, not on the file's text: in
    the file a password holding a quote, a backslash or a non-ASCII letter is escaped
    (``\\"``, ``\\u00e9``) and would not be recognised."""
    if not executed.exists():
        return
    text = executed.read_text(encoding="utf-8")
    document = json.loads(text)
    masked = _redact_strings(document)
    if masked != document:
        executed.write_text(
            json.dumps(masked, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )


def _redact_strings(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_strings(v) for v in value]
    if isinstance(value, dict):
        return {_redact_strings(k): _redact_strings(v) for k, v in value.items()}
    return value


def _html(executed: Path) -> Path | None:
    """An HTML rendering for people who will not open a notebook; None without nbconvert."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    import nbformat

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(executed), as_version=4))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html
