"""`backup prune` on a shared directory of real backups: two databases, automatic backups
taken by `apply`/`rollback` and manual ones, full and schema-only, verified, failed and
never verified. Pruning goes per database, origin and kind, never removes the newest
verified backup of a group, previews with --dry-run, and asks first (exit 2 without a
terminal) unless --yes or every backup it would delete is of the sandbox."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db import backup as backups
from bilantools.db.sandbox import Sandbox
from bilantools.db.target import parse_target
from tests.conftest import FIXTURES, TEMPLATE
from tests.faults.harness import CLI, cli_env


@dataclass(frozen=True)
class Shelf:
    """The fixture's backup directory; names[label] is a backup's file name."""

    dir: Path
    names: dict[str, str]
    databases: dict[str, str]  # "prod"/"crm" -> the database's real name


def _next_second() -> None:
    """Sidecars record the second: the next backup must be later than the last one."""
    time.sleep(1.02 - time.time() % 1)


@pytest.fixture(scope="module")
def shelf(server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shelf]:
    """prod: manual full (verified), 2 automatic (apply), manual full, 2 automatic (apply,
    rollback); crm: manual full (verified), manual full (verification failed), manual
    schema-only. Oldest first; none of them of the sandbox."""
    out = tmp_path_factory.mktemp("shelf")
    urls = {k: server.new_db(f"{k}_{uuid.uuid4().hex[:6]}", template=TEMPLATE) for k in ("prod", "crm")}
    prod, crm = (parse_target(urls[k], "--db") for k in ("prod", "crm"))
    names: dict[str, str] = {}

    def manual(label: str, target: Any, **options: Any) -> backups.Backup:
        taken = backups.take(target, out, **options)
        names[label] = taken.file.name
        _next_second()
        return taken

    def automatic(label: str, run: Any) -> None:
        result = run()
        assert result.backup is not None
        names[label] = Path(result.backup).name
        _next_second()

    basic = FIXTURES / "basic"
    assert backups.verify(manual("p_m1", prod).file, server).ok
    automatic(
        "p_a1",
        lambda: commands.apply(
            target=prod, project=basic, options=commands.RunOptions(to="001", backup_dir=out)
        ),
    )
    automatic(
        "p_a2",
        lambda: commands.apply(
            target=prod, project=basic, options=commands.RunOptions(to="002", backup_dir=out)
        ),
    )
    manual("p_m2", prod)
    automatic(
        "p_a3",
        lambda: commands.apply(target=prod, project=basic, options=commands.RunOptions(backup_dir=out)),
    )
    automatic(
        "p_a4",
        lambda: commands.rollback(target=prod, project=basic, options=commands.RunOptions(backup_dir=out)),
    )
    commands.apply(target=crm, project=basic, options=commands.RunOptions(backup=False))
    assert backups.verify(manual("c_m1", crm).file, server).ok
    failing = manual("c_m2", crm)
    original = failing.file.read_bytes()
    failing.file.write_bytes(original[:-100])  # a real failed verification, then the file back
    assert not backups.verify(failing.file, server).ok
    failing.file.write_bytes(original)
    manual("c_s1", crm, schema_only=True)
    assert len(list(out.glob("*.json"))) == 9
    yield Shelf(out, names, {k: u.rsplit("/", 1)[1] for k, u in urls.items()})
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for url in urls.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def copy(shelf: Shelf, tmp_path: Path) -> Shelf:
    """A copy of the shelf this test may prune."""
    out = tmp_path / "backups"
    shutil.copytree(shelf.dir, out)
    return Shelf(out, shelf.names, shelf.databases)


def tree(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def left(shelf: Shelf) -> list[str]:
    """The labels of the backups still in the directory, with their sidecars."""
    present = {p.name for p in shelf.dir.iterdir()}
    labels = [k for k, name in shelf.names.items() if name in present]
    assert all(shelf.names[k] + ".json" in present for k in labels)
    return sorted(labels)


def test_sidecars_record_origin_and_sandbox(shelf: Shelf) -> None:
    metas = {k: json.loads((shelf.dir / (n + ".json")).read_text()) for k, n in shelf.names.items()}
    assert {k: m["origin"] for k, m in metas.items()} == {
        "p_m1": "manual",
        "p_a1": "automatic",
        "p_a2": "automatic",
        "p_m2": "manual",
        "p_a3": "automatic",
        "p_a4": "automatic",
        "c_m1": "manual",
        "c_m2": "manual",
        "c_s1": "manual",
    }
    assert {m["sandbox"] for m in metas.values()} == {False}


def test_keep_1_keeps_each_group_and_the_verified(copy: Shelf, cli: Any) -> None:
    r = cli("backup", "--out", str(copy.dir), "prune", "--keep", "1", "--yes")
    assert r.code == 0, r.err
    assert left(copy) == ["c_m1", "c_m2", "c_s1", "p_a4", "p_m1", "p_m2"]
    gone = [f"removed {copy.dir / copy.names[k]}" for k in ("p_a3", "p_a2", "p_a1")]
    assert r.out.splitlines() == [*gone, "3 backup(s) removed, 6 kept"]


def test_keep_2(copy: Shelf) -> None:
    removed = commands.backup_prune(out=copy.dir, keep=2)
    assert removed == [copy.dir / copy.names[k] for k in ("p_a2", "p_a1")]
    assert left(copy) == ["c_m1", "c_m2", "c_s1", "p_a3", "p_a4", "p_m1", "p_m2"]


def test_dry_run_previews_and_deletes_nothing(copy: Shelf, cli: Any) -> None:
    before = tree(copy.dir)
    r = cli("backup", "--out", str(copy.dir), "prune", "--keep", "1", "--dry-run")
    assert r.code == 0, r.err
    prod, crm = copy.databases["prod"], copy.databases["crm"]
    expected = {
        "c_s1": f"keep: among the newest 1 of {crm}'s manual schema backups",
        "c_m2": f"keep: among the newest 1 of {crm}'s manual full backups",
        "c_m1": f"keep: the newest verified of {crm}'s manual full backups",
        "p_a4": f"keep: among the newest 1 of {prod}'s automatic full backups",
        "p_a3": f"would remove: older than the newest 1 of {prod}'s automatic full backups",
        "p_m2": f"keep: among the newest 1 of {prod}'s manual full backups",
        "p_a2": f"would remove: older than the newest 1 of {prod}'s automatic full backups",
        "p_a1": f"would remove: older than the newest 1 of {prod}'s automatic full backups",
        "p_m1": f"keep: the newest verified of {prod}'s manual full backups",
    }
    lines = []
    for label, text in expected.items():
        verdict, reason = text.split(": ", 1)
        lines.append(f"{verdict} {copy.dir / copy.names[label]}: {reason}")
    assert r.out.splitlines() == [*lines, "3 backup(s) would be removed, 6 kept"]
    r = cli("backup", "--out", str(copy.dir), "prune", "--keep", "1", "--dry-run", "--json")
    data = json.loads(r.out)
    assert data["dry_run"] is True and data["keep"] == 1
    assert [Path(d["file"]).name for d in data["removed"]] == [
        copy.names[k] for k in ("p_a3", "p_a2", "p_a1")
    ]
    assert data["removed"][0] == {
        "file": str(copy.dir / copy.names["p_a3"]),
        "database": prod,
        "origin": "automatic",
        "kind": "full",
        "created_at": data["removed"][0]["created_at"],
        "verified": False,
        "reason": f"older than the newest 1 of {prod}'s automatic full backups",
    }
    assert [d["verified"] for d in data["kept"]] == [False, False, True, False, False, True]
    assert tree(copy.dir) == before


def test_refused_without_a_terminal_and_without_yes(copy: Shelf, cli: Any) -> None:
    before = tree(copy.dir)
    r = cli("backup", "--out", str(copy.dir), "prune", "--keep", "1")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines()[-1] == (
        f"error: refusing to delete 3 backup(s) of {copy.databases['prod']} from {copy.dir} without "
        "confirmation: pass --yes (--dry-run lists them)"
    )
    assert tree(copy.dir) == before
    r = cli("backup", "--out", str(copy.dir), "prune", "--keep", "1", "--json")
    assert r.code == 2 and r.out == "" and tree(copy.dir) == before


def test_asks_on_a_terminal(copy: Shelf, server: Sandbox) -> None:
    """A real terminal: 'n' deletes nothing, 'y' deletes what the list showed."""
    before = tree(copy.dir)
    prod = copy.databases["prod"]
    listed = [
        f"to remove: {copy.dir / copy.names[k]}: older than the newest 1 of {prod}'s automatic full backups"
        for k in ("p_a3", "p_a2", "p_a1")
    ]
    for answer, code in (("n", 2), ("y", 0)):
        primary, secondary = os.openpty()
        try:
            os.write(primary, f"{answer}\n".encode())  # typed before the prompt: the terminal keeps it
            done = subprocess.run(
                [CLI, "backup", "--out", str(copy.dir), "prune", "--keep", "1"],
                stdin=secondary,
                capture_output=True,
                text=True,
                env=cli_env(server.home),
                timeout=60,
            )
        finally:
            os.close(primary)
            os.close(secondary)
        assert done.returncode == code, done.stderr
        assert done.stderr.splitlines()[:3] == listed
        assert f"Delete 3 backup(s) of {prod} from {copy.dir}? [y/N]" in done.stderr
        if answer == "n":
            assert done.stderr.splitlines()[-1].endswith("error: cancelled: nothing was changed")
            assert tree(copy.dir) == before
    assert left(copy) == ["c_m1", "c_m2", "c_s1", "p_a4", "p_m1", "p_m2"]


def test_sandbox_backups_are_pruned_without_asking(db_url: str, cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "bk"
    first = commands.backup(target=db_url, out=out, schema_only=True)
    _next_second()
    second = commands.backup(target=db_url, out=out, schema_only=True)
    assert first.meta["sandbox"] is True
    r = cli("backup", "--out", str(out), "prune", "--keep", "1")
    assert r.code == 0 and r.out.splitlines() == [f"removed {first.file}", "1 backup(s) removed, 1 kept"]
    assert sorted(p.name for p in out.iterdir()) == sorted([second.file.name, second.sidecar.name])


def test_sidecars_without_origin_are_a_group_of_their_own(copy: Shelf) -> None:
    """Sidecars of older bilantools versions: never pruned in place of recorded ones."""
    for label in ("p_a1", "p_a2", "p_m1"):
        sidecar = copy.dir / (copy.names[label] + ".json")
        meta = json.loads(sidecar.read_text())
        del meta["origin"], meta["sandbox"]
        sidecar.write_text(json.dumps(meta))
    plan = commands.backup_prune_plan(out=copy.dir, keep=1)
    reasons = {d.backup.file.name: d.reason for d in plan.decisions}
    prod = copy.databases["prod"]
    assert reasons[copy.names["p_a2"]] == f"among the newest 1 of {prod}'s full backups of unrecorded origin"
    assert reasons[copy.names["p_m1"]] == f"the newest verified of {prod}'s full backups of unrecorded origin"
    assert [d.backup.file.name for d in plan.removed] == [copy.names[k] for k in ("p_a3", "p_a1")]
    assert plan.needs_confirmation


def test_a_backup_verified_after_the_preview_is_not_deleted(copy: Shelf, server: Sandbox) -> None:
    plan = commands.backup_prune_plan(out=copy.dir, keep=1)
    assert [d.backup.file.name for d in plan.removed] == [copy.names[k] for k in ("p_a3", "p_a2", "p_a1")]
    assert backups.verify(copy.dir / copy.names["p_a3"], server).ok  # meanwhile, a restore drill
    removed = commands.backup_prune(out=copy.dir, keep=1, approved=plan)
    assert removed == [copy.dir / copy.names[k] for k in ("p_a2", "p_a1")]
    assert "p_a3" in left(copy)
