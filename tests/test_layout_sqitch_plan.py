"""sqitch.plan read as Sqitch reads it: pragmas, changes, tags, reworks, dependencies, and
one error finding with its line and fix for every malformed line (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilantools.source.layouts.sqitch_plan import Plan, change_ids, parse_plan
from tests.conftest import FIXTURES

HEAD = "%syntax-version=1.0.0\n%project=league\n%uri=https://example.com/league/\n\n"
WHO = "2024-03-01T10:00:00Z Dana DBA <dana@example.com>"


def plan_of(body: str, provided: frozenset[str] = frozenset(), head: str = HEAD) -> Plan:
    return parse_plan(Path("p/sqitch.plan"), head + body, provided)


def problems(plan: Plan) -> list[str]:
    return [f.one_line() for f in plan.findings]


def test_the_fixture_plan_in_plan_order_with_its_rework_and_tags() -> None:
    plan = parse_plan(FIXTURES / "sqitch" / "sqitch.plan", (FIXTURES / "sqitch" / "sqitch.plan").read_text())
    assert plan.findings == []
    assert (plan.project, plan.uri) == ("league", "https://example.com/league/")
    assert [c.key for c in plan.changes] == [
        "appschema",
        "app/teams",
        "app/players",  # planned third although its timestamp is the oldest
        "app.functions/team_size@v1.0",
        "seed/teams",
        "app.functions/team_size",
    ]
    assert plan.tags == {"v1.0": 3, "v1.1": 5}
    players = plan.changes[2]
    assert (players.timestamp, players.planner, players.note) == (
        "2024-02-15T09:00:00Z",
        "Dana DBA <dana@example.com>",
        "Players of a team.",
    )
    reworked = plan.changes[5]
    assert [d.text for d in reworked.requires] == ["app.functions/team_size@v1.0", "seed/teams"]
    assert plan.changes[3].rework_tags == ["v1.0"]
    assert plan.index_of("@v1.0") == 3 and plan.index_of("app.functions/team_size") == 5
    assert plan.index_of("app/teams@v1.0") == 1 and plan.index_of("@v9") is None


def test_names_with_slashes_dots_and_dependencies_of_every_form() -> None:
    plan = plan_of(
        f"a.b/c {WHO} # first\n+d [a.b/c !x other:thing] {WHO}\n@t1 {WHO}\ne [a.b/c@t1 @t1] {WHO}\n",
        provided=frozenset({"sqitch:other:thing"}),
    )
    assert problems(plan) == []
    d, e = plan.changes[1], plan.changes[2]
    assert [(x.change, x.project, x.conflict) for x in (*d.requires, *d.conflicts)] == [
        ("a.b/c", None, False),
        ("thing", "other", False),
        ("x", None, True),
    ]
    assert [x.key for x in e.requires] == ["a.b/c@t1", "@t1"]


def test_every_malformed_line_is_an_error_with_its_line_and_fix() -> None:
    plan = plan_of(
        f"ok {WHO}\n"  # line 5
        "no_time Dana <dana@example.com>\n"
        "no_planner 2024-03-01T10:00:00Z\n"
        f"bad: {WHO}\n"
        f"HEAD {WHO}\n"
        f"ok {WHO}\n"  # 10: twice with no tag between
        f"x [ok,] {WHO}\n"
        f"-gone {WHO}\n"
        f"@t [ok] {WHO}\n"
        f"@{'a' * 3} {WHO}\n"
        f"@aaa {WHO}\n"  # 15: the same tag again
        "just words\n"
        "@notime Dana <dana@example.com>\n"
    )
    lines = problems(plan)
    shape = "write it as 'name [dependencies] YYYY-MM-DDTHH:MM:SSZ Planner Name <email> # note'"
    assert lines == [
        f"p/sqitch.plan:6: 'no_time' has no timestamp; {shape}",
        f"p/sqitch.plan:7: 'no_planner' has no planner name and email; {shape}",
        f"p/sqitch.plan:8: invalid change line 'bad: {WHO}': names must not begin with punctuation, "
        f"contain '@', ':' or '#', or end in punctuation or in digits following punctuation; {shape}",
        "p/sqitch.plan:9: 'HEAD' is a reserved name (ROOT, HEAD, FIRST, LAST); rename it",
        "p/sqitch.plan:10: change 'ok' duplicates its declaration on line 5 with no tag between; "
        "rename it, or tag the plan before reworking ok ('sqitch rework')",
        "p/sqitch.plan:11: 'ok,' is not a valid dependency; write 'change', 'change@tag', '@tag', "
        "'project:change' or '!change' (a conflict)",
        "p/sqitch.plan:12: '-gone' asks Sqitch to revert a change from the plan, which bilantools does "
        "not do; remove the line and run 'bilantools rollback --to' to revert gone",
        "p/sqitch.plan:13: tag '@t' has dependencies; remove the [...] list from the tag line",
        "p/sqitch.plan:15: tag '@aaa' is declared twice (its change is on line 11); rename one",
        f"p/sqitch.plan:16: invalid change line 'just words': names must not begin with punctuation, "
        f"contain '@', ':' or '#', or end in punctuation or in digits following punctuation; {shape}",
        f"p/sqitch.plan:17: '@notime' has no timestamp; {shape}",
    ]


def test_pragmas_need_a_project_and_an_empty_line_before_the_changes() -> None:
    plan = plan_of(f"a {WHO}\n", head="%syntax-version=1.0.0\n")
    assert problems(plan) == [
        "p/sqitch.plan:2: 'a 2024-03-01T10:00:00Z Dana DBA <dana@example.com>' is not a pragma, and no "
        "empty line separates the pragmas from the changes; put an empty line between the pragmas "
        "(%project=...) and the first change",
        "sqitch.plan has no %project pragma; add '%project=<name>' at its top",
    ]
    assert [c.name for c in plan.changes] == ["a"]  # the line is still read as a change


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            f"a [b] {WHO}\nb {WHO}\n",
            "p/sqitch.plan:5: change 'a' is planned 1 change(s) before its requirement 'b' (line 6); "
            "Sqitch refuses such a plan; move it below line 6",
        ),
        (f"a [a] {WHO}\n", "p/sqitch.plan:5: change 'a' requires itself; remove 'a' from its dependencies"),
        (
            f"a [zz] {WHO}\n",
            "p/sqitch.plan:5: change 'a' requires unknown change 'zz'; fix the dependency or add that "
            "change to the plan",
        ),
        (
            f"a [other:b] {WHO}\n",
            "p/sqitch.plan:5: change 'a' requires 'other:b', a change of another Sqitch project, which "
            'this plan cannot deploy; deploy project other first and add "sqitch:other:b" to provided in '
            "[tool.bilantools] of pyproject.toml",
        ),
        (
            f"a {WHO}\nb [!a] {WHO}\n",
            "p/sqitch.plan:6: change 'b' conflicts with 'a' (line 5), which the plan deploys before it: "
            "Sqitch refuses to deploy it while that one is deployed, and bilantools deploys the plan in "
            "order; remove '!a' or move 'b' so that it replaces a (rework it)",
        ),
    ],
)
def test_dependencies_are_checked_as_sqitch_checks_them(body: str, problem: str) -> None:
    assert problems(plan_of(body)) == [problem]


def test_a_conflict_with_a_later_or_unknown_change_and_a_requirement_of_the_earlier_instance() -> None:
    plan = plan_of(f"a [!b !nowhere] {WHO}\n@t {WHO}\nb [a] {WHO}\na [a@t] {WHO}\n")
    assert problems(plan) == []
    assert [c.key for c in plan.changes] == ["a@t", "b", "a"]


def test_a_reworked_change_takes_the_first_tag_whose_script_exists(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "f@t2.sql").write_text("SELECT 1;\n")
    text = HEAD + f"f {WHO}\n@t1 {WHO}\ng {WHO}\n@t2 {WHO}\nf [f@t2] {WHO}\n"
    plan = parse_plan(tmp_path / "sqitch.plan", text)
    assert problems(plan) == []
    assert plan.changes[0].rework_tags == ["t1", "t2"]
    assert [c.key for c in plan.changes] == ["f@t2", "g", "f"]


def test_notes_keep_escapes_as_sqitch_decodes_them() -> None:
    plan = plan_of(f"a {WHO} #  two\\nlines and a \\\\ # not a second note\n")
    assert plan.changes[0].note == "two\nlines and a \\ # not a second note"


def test_change_ids_as_sqitch_computes_them_derived_by_hand() -> None:
    """Derived in a shell from the info text App::Sqitch::Plan::Change hashes, e.g. for the
    first change: info='project league\\nuri https://example.com/league/\\nchange appschema\\n
    planner Dana DBA <dana@example.com>\\ndate 2024-03-01T10:00:00Z\\n\\nAdd schema league for
    every league object.' (169 bytes); { printf 'change 169\\0'; printf '%s' "$info"; } | sha1sum.
    The second adds 'parent <first id>' after its name and 'requires\\n  + appschema'."""
    path = FIXTURES / "sqitch" / "sqitch.plan"
    ids = change_ids(parse_plan(path, path.read_text()))
    assert ids is not None
    assert (ids["appschema"], ids["app/teams"]) == (
        "3a372caabd4161f9d45e3d33cebb93cd32dea7f4",
        "ce96c01089ebbd45ec40464235654a749f69a969",
    )
    assert len(set(ids.values())) == 6  # the reworked change's two instances differ


@pytest.mark.parametrize(
    ("uri", "same_as"),
    [
        ("HTTPS://Example.COM:443", "https://example.com/"),
        ("http://Example.com:8080", "http://example.com:8080/"),
    ],
)
def test_change_ids_canonicalise_the_uri_as_perl_does(uri: str, same_as: str) -> None:
    def first_id(uri: str) -> str | None:
        ids = change_ids(plan_of(f"a {WHO}\n", head=f"%project=p\n%uri={uri}\n\n"))
        return ids["a"] if ids else None

    assert first_id(uri) == first_id(same_as) is not None


def test_no_change_ids_for_a_uri_that_cannot_be_canonicalised_or_a_plan_with_errors() -> None:
    for uri in ("urn:uuid:1234", "https://example.com/a%20b", "https://example.com/?q"):
        assert change_ids(plan_of(f"a {WHO}\n", head=f"%project=p\n%uri={uri}\n\n")) is None
    assert change_ids(plan_of(f"a [zz] {WHO}\n")) is None
