"""Fleet rollouts on a real local fleet: 20 databases of the test server, the three
migrations of tests/fixtures/basic (one database made to conflict with the first)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.sandbox import Sandbox
from bilantools.errors import InputError
from bilantools.fleet.results import RolloutResult, TargetRun
from bilantools.fleet.selection import Selection, Stage, from_urls
from tests.conftest import TEMPLATE

SIZE = 20


def databases(server: Sandbox, monkeypatch: pytest.MonkeyPatch, size: int) -> Iterator[list[str]]:
    """`size` fresh databases (URLs), dropped afterwards."""
    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))
    prefix = "f" + uuid.uuid4().hex[:8]
    urls = [server.new_db(f"{prefix}_{i:02}", template=TEMPLATE) for i in range(size)]
    yield urls
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for url in urls:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def fleet(server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The acceptance's fleet: SIZE databases."""
    yield from databases(server, monkeypatch, SIZE)


@pytest.fixture
def few(server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Four databases, for what does not need the whole fleet."""
    yield from databases(server, monkeypatch, 4)


def conflict(url: str) -> None:
    """The table the first migration creates is there already: that migration fails."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id int)")


def applied(url: str) -> list[str]:
    """The versions the tracking table holds ([] without one)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone() == (None,):
            return []
        rows = conn.execute("SELECT version FROM schema_migrations WHERE success ORDER BY version").fetchall()
        return [r[0] for r in rows]


def consistent(url: str) -> None:
    """What the tracking table says applied is what the schema has: nothing half-done."""
    versions = applied(url)
    with psycopg.connect(url, autocommit=True) as conn:
        people = conn.execute("SELECT to_regclass('public.people') IS NOT NULL").fetchone() == (True,)
        email = conn.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'people' AND column_name = 'email'"
        ).fetchone() == (1,)
        func = conn.execute("SELECT to_regproc('public.people_count') IS NOT NULL").fetchone() == (True,)
    assert email == ("002" in versions) and func == ("003" in versions)
    assert people or not versions


def write_fleet(tmp_path: Path, urls: list[str], monkeypatch: pytest.MonkeyPatch, waves: str) -> Path:
    lines = []
    for i, url in enumerate(urls):
        monkeypatch.setenv(f"T{i:02}_URL", url)
        lines.append(f'[targets.t{i:02}]\nurl_env = "T{i:02}_URL"\nlabels = ["tenant"]\n')
    path = tmp_path / "fleet.toml"
    path.write_text("\n".join(lines) + waves)
    return path


def run_fleet(basic: Path, stages: list[Stage], action: str = "apply") -> RolloutResult:
    return commands.fleet(
        action=action, stages=stages, project=basic, options=commands.RunOptions(backup=False)
    )


def test_fleet_apply_in_waves_prints_one_json(
    cli: Any, basic: Path, fleet: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waves = (
        '[[waves]]\nname = "canary"\ntargets = ["t00"]\nparallel = 1\non_error = "stop"\n'
        '[[waves]]\nname = "wave1"\nlabels = ["tenant"]\nparallel = 4\non_error = "continue"\n'
    )
    path = write_fleet(tmp_path, fleet, monkeypatch, waves)
    args = (
        "--migrations",
        str(basic),
        "fleet",
        "apply",
        "--fleet",
        str(path),
        "--yes",
        "--no-backup",
        "--json",
    )
    result = cli(*args)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) >= {"rollout_id", "targets", "summary"}
    uuid.UUID(data["rollout_id"])
    assert [t["name"] for t in data["targets"]] == [f"t{i:02}" for i in range(SIZE)]
    first = data["targets"][0]
    assert first["wave"] == "canary" and {t["wave"] for t in data["targets"][1:]} == {"wave1"}
    assert set(first) >= {"name", "outcome", "applied", "failed", "error", "duration_ms", "backup"}
    assert all(t["outcome"] == "done" and t["applied"] == 3 and t["failed"] == 0 for t in data["targets"])
    assert data["summary"]["done"] == SIZE and data["summary"]["applied"] == 3 * SIZE
    assert all(applied(url) == ["001", "002", "003"] for url in fleet)
    again = cli(*args)
    assert again.code == 0 and json.loads(again.out)["summary"]["applied"] == 0
    status = cli("--migrations", str(basic), "fleet", "status", "--fleet", str(path), "--targets", "t03")
    assert status.code == 0 and "t03" in status.out and "t04" not in status.out
    assert "1 target(s): 1 done" in status.out


def test_a_failed_canary_stops_the_next_waves(
    cli: Any, basic: Path, few: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflict(few[0])
    waves = (
        '[[waves]]\nname = "canary"\ntargets = ["t00"]\nparallel = 1\non_error = "stop"\n'
        '[[waves]]\nname = "wave1"\nlabels = ["tenant"]\nparallel = 4\non_error = "continue"\n'
    )
    path = write_fleet(tmp_path, few, monkeypatch, waves)
    result = cli("--migrations", str(basic), "fleet", "apply", "--fleet", str(path), "--yes", "--no-backup")
    assert result.code == 1
    assert "1 failed, 3 not-started" in result.out
    assert 'relation "people" already exists' in result.out
    assert all(applied(url) == [] for url in few)


def test_on_error_stop_starts_no_target_after_a_failure(basic: Path, fleet: list[str]) -> None:
    conflict(fleet[3])
    stages = from_urls(fleet, parallel=2, on_error="stop")
    result = run_fleet(basic, stages)
    outcomes = {t.name: t.outcome for t in result.targets}
    failed = [t for t in result.targets if t.outcome == "failed"]
    assert len(failed) == 1 and failed[0].failed == 1 and "already exists" in str(failed[0].error)
    assert "not-started" in outcomes.values()
    assert result.exit_code == 1
    for url, run in zip(fleet, result.targets, strict=True):
        consistent(url)
        assert len(applied(url)) == run.applied
        if run.outcome == "not-started":
            assert applied(url) == []
    index = [t.name for t in result.targets].index(failed[0].name)
    # of the two workers, the other may have started one more target before the failure
    assert all(t.outcome == "not-started" for t in result.targets[index + 2 :])


def test_on_error_continue_does_all_the_others(basic: Path, fleet: list[str]) -> None:
    conflict(fleet[3])
    result = run_fleet(basic, from_urls(fleet, parallel=4, on_error="continue"))
    assert [t.outcome for t in result.targets].count("done") == SIZE - 1
    assert result.targets[3].outcome == "failed" and result.exit_code == 1
    assert [len(applied(url)) for url in fleet] == [3, 3, 3, 0] + [3] * (SIZE - 4)


def test_two_rollouts_at_once_apply_each_migration_once(basic: Path, fleet: list[str]) -> None:
    stages = from_urls(fleet, parallel=4, on_error="continue")
    results: list[RolloutResult] = []
    threads = [threading.Thread(target=lambda: results.append(run_fleet(basic, stages))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    assert sum(t.applied for r in results for t in r.targets) == 3 * SIZE
    for url in fleet:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1"
            ).fetchall()
            events = conn.execute(
                "SELECT count(*) FROM schema_migration_events WHERE action = 'apply' AND outcome = 'success'"
            ).fetchone()
        assert rows == [("001", 1), ("002", 1), ("003", 1)] and events == (3,)


def test_from_query_lists_the_databases_of_a_server(
    cli: Any, basic: Path, few: list[str], server: Sandbox
) -> None:
    prefix = few[0].rsplit("/", 1)[1][:9]
    secret = "pw-of-the-query"
    server_url = server.url("postgres").replace("postgres@", f"postgres:{secret}@")
    query = f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1"
    base = ("--migrations", str(basic), "fleet", "plan", "--db", server_url, "--from-query")
    result = cli(*base, query, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert [t["name"] for t in data["targets"]] == [url.rsplit("/", 1)[1] for url in few]
    assert all(t["pending"] == 3 for t in data["targets"])
    bad = cli(*base, "CREATE TABLE fleet_probe (id int)")  # the query runs read-only
    assert bad.code == 2 and "error: the query of --from-query SQL failed" in bad.err
    assert "read-only transaction" in bad.err
    assert secret not in result.out + result.err + bad.err


def test_db_repeated_is_deduplicated_and_never_shows_a_password(
    cli: Any, basic: Path, few: list[str]
) -> None:
    secret = "s3cr3t-fleet"
    urls = [url.replace("postgres@", f"postgres:{secret}@") for url in few[:3]]
    args = ["--migrations", str(basic), "fleet", "apply", "--yes", "--no-backup"]
    for url in [*urls, urls[0].replace("127.0.0.1", "localhost")]:
        args += ["--db", url]
    result = cli(*args)
    assert result.code == 0, result.err
    assert "3 target(s) in 1 wave(s)" in result.err and "3 done" in result.out
    assert secret not in result.out + result.err and "***" in result.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[targets.a]\nurl = "postgresql://u:pw@h/db"\n', "targets.a.url holds a password; never write one"),
        ('[targets.a]\nurl_env = "A"\nport = 5\n', "unknown key targets.a.port; the keys here are url_env"),
        ('[targets.a]\nlabels = ["x"]\n', "targets.a needs exactly one of url_env"),
        (
            '[targets.a]\nurl_env = "A"\n[targets.b]\nurl_env = "B"\n[[waves]]\ntargets = ["a"]\n',
            "target 'b' is in no wave; add it to a wave's targets or labels",
        ),
        (
            '[targets.a]\nurl_env = "A"\n[[waves]]\ntargets = ["a"]\nparallel = 0\n',
            "waves[0].parallel must be",
        ),
        (
            '[targets.a]\nurl_env = "A"\n[[waves]]\ntargets = ["a"]\non_error = "halt"\n',
            'on_error must be "stop"',
        ),
        ('[targets.a]\nurl_env = "UNSET_FLEET_URL"\n', "environment variable UNSET_FLEET_URL is not set"),
    ],
)
def test_a_bad_fleet_file_is_one_line_naming_the_fix(
    cli: Any, basic: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    result = cli("--migrations", str(basic), "fleet", "status", "--fleet", str(path))
    assert result.code == 2
    assert message in result.err
    assert str(path) in result.err or "UNSET" in message
    assert "pw@" not in result.err


def test_the_global_db_is_refused_not_ignored(cli: Any, basic: Path, few: list[str]) -> None:
    """`bilantools --db URL fleet apply` used to run on no database at all (or the fleet file's)."""
    before = [applied(url) for url in few]
    result = cli("--db", few[0], "--migrations", str(basic), "fleet", "apply", "--db", few[1], "--yes")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == (
        "error: the --db before 'fleet' is not used by fleet commands: give the databases after the command "
        "('bilantools fleet apply --db URL --db URL ...'), or use --fleet / --targets"
    )
    assert [applied(url) for url in few] == before


def test_selection_errors(basic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fleet.toml"
    monkeypatch.setenv("A_URL", "postgresql://u@h/a")
    path.write_text('[targets.a]\nurl_env = "A_URL"\nlabels = ["eu"]\n')
    with pytest.raises(InputError, match=r"no target named 'b'.*pass targets=NAME"):
        commands.fleet_select(project=basic, selection=Selection(fleet_file=path, targets=["b"]))
    with pytest.raises(InputError, match="has label 'us'; the labels are eu"):
        commands.fleet_select(project=basic, selection=Selection(fleet_file=path, targets=["label:us"]))
    (stage,) = commands.fleet_select(project=basic, selection=Selection())  # fleet.toml beside the migrations
    assert stage.name == "all" and [m.name for m in stage.members] == ["a"]
    path.unlink()
    with pytest.raises(InputError, match=r"no fleet file at .*fleet\.toml: write one"):
        commands.fleet_select(project=basic, selection=Selection())


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)])
def test_killing_the_cli_mid_rollout_leaves_every_database_consistent(
    basic: Path, fleet: list[str], tmp_path: Path, signum: int, code: int
) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    for f in basic.iterdir():
        (slow / f.name).write_text(f.read_text())
    (slow / "002_add_email.sql").write_text(
        "SELECT pg_sleep(0.3);\nALTER TABLE people ADD COLUMN email text CHECK (email LIKE '%@%');\n"
    )
    args = [
        sys.executable,
        "-m",
        "bilantools",
        "--migrations",
        str(slow),
        "fleet",
        "apply",
        "--yes",
        "--json",
    ]
    args += ["--parallel", "2", *[a for url in fleet for a in ("--db", url)]]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(applied(fleet[0])) < 3 and time.monotonic() < deadline:  # mid-rollout: one target done
        time.sleep(0.05)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    counts = [len(applied(url)) for url in fleet]
    assert 0 < sum(counts) < 3 * SIZE, counts
    for url in fleet:
        consistent(url)
    data = json.loads(out)  # how far each target got, as the JSON of a finished rollout
    assert [t["applied"] for t in data["targets"]] == counts
    assert data["summary"]["not-started"] > 0 and data["summary"]["failed"] == 0
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert all(applied(url) == ["001", "002", "003"] for url in fleet)


GATES = (
    "[tool.bilantools.gates]\nmax-transaction-age-s = 0.1\nwait-limit-s = 1.5\n"
    "backoff-initial-s = 0.2\nbackoff-max-s = 0.4\n"
)


def test_a_gated_target_waits_then_is_skipped(cli: Any, basic: Path, few: list[str], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(GATES)
    args = ["--migrations", str(basic), "fleet", "apply", "--yes", "--no-backup"]
    args += [a for url in few[:4] for a in ("--db", url)]
    with psycopg.connect(few[2]) as blocker:  # a transaction left open on the third database
        blocker.execute("SELECT 1")
        pid = blocker.info.backend_pid
        time.sleep(0.3)
        result = cli(*args)
    assert result.code == 1
    name = few[2].rsplit("/", 1)[1]
    assert f"{name}: gated: pid {pid}" in result.err
    assert "transaction open" in result.out and "still gated after wait_limit_s 1.5" in result.out
    assert "3 done, 1 skipped" in result.out
    assert [len(applied(url)) for url in few[:4]] == [3, 3, 0, 3]


def test_a_gated_target_goes_on_once_the_blocker_ends(basic: Path, few: list[str], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(GATES)
    blocker = psycopg.connect(few[0])
    blocker.execute("SELECT 1")
    time.sleep(0.3)
    ender = threading.Timer(0.6, blocker.close)
    ender.start()
    result = run_fleet(basic, from_urls(few[:2]))
    ender.join()
    assert [t.outcome for t in result.targets] == ["done", "done"] and result.exit_code == 0
    assert result.targets[0].duration_ms is not None and result.targets[0].duration_ms >= 300


def test_the_read_commands_and_backup_across_the_fleet(
    cli: Any, basic: Path, few: list[str], tmp_path: Path
) -> None:
    base = ["--migrations", str(basic), "fleet"]
    dbs = [a for url in few[:2] for a in ("--db", url)]
    assert cli(*base, "apply", *dbs).code == 0
    with psycopg.connect(few[1], autocommit=True) as conn:
        conn.execute("CREATE TABLE stray (id int)")
    for action, outcomes in (
        ("verify", ["done", "done"]),
        ("validate", ["done", "done"]),
        ("drift", ["done", "failed"]),
    ):
        result = cli(*base, action, *dbs, "--json")
        data = json.loads(result.out)
        assert [t["outcome"] for t in data["targets"]] == outcomes, (action, result.out)
        assert result.code == (1 if "failed" in outcomes else 0)
    drifted = json.loads(cli(*base, "drift", *dbs, "--json").out)["targets"][1]
    assert drifted["failed"] >= 1 and drifted["error"], drifted
    out = tmp_path / "fleet-backups"
    backed = json.loads(cli(*base, "backup", *dbs, "--out", str(out), "--json").out)
    assert all(t["outcome"] == "done" and Path(t["backup"]).is_file() for t in backed["targets"])
    assert Path(backed["targets"][0]["backup"]).parent == out


def test_the_gates_look_at_the_tables_the_pending_migrations_touch(basic: Path) -> None:
    analysis = commands.Project.load(basic).analysis
    assert analysis.touched_tables(["002", "003"]) == {"people"}
    assert analysis.touched_tables(["001"]) == frozenset()  # it creates people: no vacuum there yet
    assert analysis.touched_tables(["003"], rollback=True) == {"people"}


def test_a_vacuum_on_a_table_the_next_migration_alters_gates_the_target(
    basic: Path, few: list[str], tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.bilantools.gates]\nmax-transaction-age-s = 3600\nwait-limit-s = 1.5\n"
        "backoff-initial-s = 0.2\nbackoff-max-s = 0.4\n"
    )
    url = few[0]
    commands.apply(target=url, project=basic, options=commands.RunOptions(step=1, backup=False))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO people (name) SELECT 'p' || g FROM generate_series(1, 1000) g")
    with psycopg.connect(url) as pin, psycopg.connect(url, autocommit=True) as vacuum:
        cursor = pin.cursor("pin")  # a buffer pin VACUUM (FREEZE) waits for: it stays in progress
        cursor.execute("SELECT * FROM people")
        cursor.fetchone()
        vacuuming = threading.Thread(target=vacuum.execute, args=("VACUUM (FREEZE) people",))
        vacuuming.start()
        try:
            result = run_fleet(basic, from_urls([url]))
        finally:
            cursor.close()
            pin.rollback()
            vacuuming.join()
    [target] = result.targets
    assert target.outcome == "skipped", target
    assert "on public.people, a table the migration touches" in (target.error or "")
    assert applied(url) == ["001"]


def two_waves(urls: list[str]) -> list[Stage]:
    """A canary wave of the first database, then a wave of the others."""
    (stage,) = from_urls(urls)
    return [Stage("canary", stage.members[:1]), Stage("wave1", stage.members[1:])]


def test_the_next_wave_waits_until_the_canary_is_healthy_again(
    basic: Path, few: list[str], tmp_path: Path
) -> None:
    """A transaction left open on the canary after its change holds the next wave (whose
    own database is healthy): shown gated with the canary named, then run once it ends."""
    (tmp_path / "pyproject.toml").write_text(GATES.replace("wait-limit-s = 1.5", "wait-limit-s = 30"))
    pids: list[int] = []
    seen: list[str] = []

    def watch(run: TargetRun) -> None:
        if run.wave == "canary" and run.state == "done":
            blocker = psycopg.connect(few[0])
            blocker.execute("SELECT 1")
            pids.append(blocker.info.backend_pid)
            time.sleep(0.3)  # older than max-transaction-age-s
            threading.Timer(1.0, blocker.close).start()
        if run.wave == "wave1" and run.state == "gated" and run.gate:
            seen.append(run.gate)

    result = commands.fleet(
        action="apply",
        stages=two_waves(few[:2]),
        project=basic,
        options=commands.RunOptions(backup=False),
        watch=watch,
    )
    assert [t.outcome for t in result.targets] == ["done", "done"], result.as_dict()
    name = few[0].rsplit("/", 1)[1]
    assert seen and seen[0].startswith(f"wave held by {name}: pid {pids[0]}"), seen


def test_a_canary_that_stays_unhealthy_leaves_the_next_wave_not_started(
    basic: Path, few: list[str], tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text(GATES)
    blockers: list[psycopg.Connection] = []

    def watch(run: TargetRun) -> None:
        if run.wave == "canary" and run.state == "done":
            blockers.append(psycopg.connect(few[0]))
            blockers[0].execute("SELECT 1")
            time.sleep(0.3)  # older than max-transaction-age-s

    try:
        result = commands.fleet(
            action="apply",
            stages=two_waves(few[:3]),
            project=basic,
            options=commands.RunOptions(backup=False),
            watch=watch,
        )
    finally:
        for blocker in blockers:
            blocker.close()
    assert [t.outcome for t in result.targets] == ["done", "not-started", "not-started"]
    assert result.exit_code == 1
    name = few[0].rsplit("/", 1)[1]
    error = result.targets[1].error or ""
    assert error.startswith(f"not started: {name}, changed in the wave before, pid "), error
    assert error.endswith("still gated after wait_limit_s 1.5"), error
    assert [len(applied(url)) for url in few[:3]] == [3, 0, 0]


def test_gates_that_cannot_be_read_fail_the_target_in_one_line(
    basic: Path, few: list[str], tmp_path: Path
) -> None:
    """The server drops the gates' connection while a target waits: that target fails
    with the reason (not an internal error), the others go on."""
    (tmp_path / "pyproject.toml").write_text(GATES.replace("wait-limit-s = 1.5", "wait-limit-s = 30"))
    name = few[0].rsplit("/", 1)[1]

    def watch(run: TargetRun) -> None:
        if run.name == name and run.state == "gated":
            with psycopg.connect(few[1], autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'bilantools fleet gates' AND datname = %s",
                    (name,),
                )

    with psycopg.connect(few[0]) as blocker:
        blocker.execute("SELECT 1")
        time.sleep(0.3)
        stages = from_urls(few[:2], on_error="continue")
        result = commands.fleet(
            action="apply",
            stages=stages,
            project=basic,
            options=commands.RunOptions(backup=False),
            watch=watch,
        )
    assert [t.outcome for t in result.targets] == ["failed", "done"], result.as_dict()
    error = result.targets[0].error or ""
    assert error.startswith("cannot read the health gates: ") and "internal error" not in error, error
    assert applied(few[0]) == []


def test_fleet_status_says_what_is_pending_on_each_target(cli: Any, basic: Path, few: list[str]) -> None:
    commands.apply(target=few[0], project=basic, options=commands.RunOptions(step=1, backup=False))
    result = cli("--migrations", str(basic), "fleet", "status", "--db", few[0], "--db", few[1])
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["TARGET", "WAVE", "OUTCOME", "APPLIED", "PENDING", "FAILED", "MS", "ERROR"]
    assert [line.split()[3:5] for line in lines[1:3]] == [["1", "2"], ["0", "3"]]
    name = few[0].rsplit("/", 1)[1]
    assert f"{name}: done (1 applied, 2 pending)" in result.err
