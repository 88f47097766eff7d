"""Row level security of the 29 migrations, proved by behaviour on a real PostgreSQL.

One database per module: the migrations are applied with bilantools, the data below is
inserted by the owner (the sandbox superuser, who bypasses RLS), and every query is then
run as a non-owner role (SET ROLE) with the request settings of 002:

    app.current_user_id          the user (no user set -> no row at all)
    app.current_user_role        optional: falls back to users.role
    app.current_organization_id  optional: falls back to users.organization_id

The expected rows are derived in Python from the inserted data and the rules documented
in 002 (app_can_read and the per-table policies):
  * beneficiary -> own rows only
  * consultant  -> own rows, rows of their beneficiaries (a non-cancelled bilan links
                   them, whatever its organization) and rows of their organization
  * admin       -> rows of their organization
  * "organization of a row" = its organization_id column when the table has one and it
    is set, else the organization of the user owning the row
  * bilans, session_bookings, assessments, conversations and action_plans are also
    visible to the consultant named in the row; competencies, recommendations and
    sessions follow the visibility of their bilan; a message is visible when its
    sender or its recipient is.
Two organizations, with cross-organization cases: the consultant of organization A
follows a beneficiary of organization B (active bilan), the consultant of organization B
was assigned a bilan of organization A that is now cancelled, a file of a beneficiary of
A is filed under organization B, and a beneficiary of B booked a slot of organization A.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bilantools import commands
from bilantools.db.sandbox import Sandbox

pytestmark = pytest.mark.pg15

REPO = Path(__file__).parent.parent
APP_ROLE = "bilantools_rls_app"
RLS_TABLES = [
    "action_plans",
    "assessments",
    "bilans",
    "competencies",
    "conversations",
    "cv_analyses",
    "documents",
    "files",
    "job_recommendations",
    "messages",
    "personality_analyses",
    "recommendations",
    "session_bookings",
    "sessions",
    "users",
]
SETTINGS = ("app.current_user_id", "app.current_user_role", "app.current_organization_id")

# ---------------------------------------------------------------------------------------
# The data: readable names, deterministic uuids
# ---------------------------------------------------------------------------------------
NAMES: dict[str, str] = {}


def uid(name: str) -> str:
    value = str(uuid.uuid5(uuid.NAMESPACE_URL, "bilantools/test_rls/" + name))
    NAMES[value] = name
    return value


@dataclass(frozen=True)
class User:
    id: str
    role: str
    org: str
    name: str


ORG_A = uid("org A")
ORG_B = uid("org B")

ADMIN_A = User(uid("admin A"), "admin", ORG_A, "admin A")
ADMIN_B = User(uid("admin B"), "admin", ORG_B, "admin B")
CONS_A = User(uid("consultant A"), "consultant", ORG_A, "consultant A")
CONS_B = User(uid("consultant B"), "consultant", ORG_B, "consultant B")
BEN_A1 = User(uid("beneficiary A1"), "beneficiary", ORG_A, "beneficiary A1")
BEN_B = User(uid("beneficiary B"), "beneficiary", ORG_B, "beneficiary B")
BEN_A3 = User(uid("beneficiary A3"), "beneficiary", ORG_A, "beneficiary A3")
BEN_B2 = User(uid("beneficiary B2"), "beneficiary", ORG_B, "beneficiary B2")
USERS = [ADMIN_A, ADMIN_B, CONS_A, CONS_B, BEN_A1, BEN_B, BEN_A3, BEN_B2]
USER_BY_ID = {u.id: u for u in USERS}

BILAN_1 = uid("bilan 1 (A1, consultant A, org A)")
BILAN_2 = uid("bilan 2 (B, consultant A, org B)")
BILAN_3 = uid("bilan 3 (A3, no consultant, org A)")
BILAN_4 = uid("bilan 4 (B, consultant B, org B, completed)")
BILAN_5 = uid("bilan 5 (A3, consultant B, org A, cancelled)")
BILAN_6 = uid("bilan 6 (B2, consultant B, org B)")
SLOT_A = uid("slot of consultant A")
SLOT_B = uid("slot of consultant B")
CONVERSATION_1 = uid("conversation A1 / consultant A")

Row = dict[str, object]


def rows_of(columns: str, *rows: tuple[object, ...]) -> list[Row]:
    cols = columns.split()
    return [dict(zip(cols, row, strict=True)) for row in rows]


def user_row(u: User, first: str, last: str) -> tuple[object, ...]:
    return (u.id, f"{first}.{last}@example.fr".lower(), "x", first, last, u.role, u.org)


def per_bilan(what: str, bilans: dict[int, str]) -> list[tuple[str, str]]:
    return [(uid(f"{what} of bilan {n}"), bilan) for n, bilan in bilans.items()]


ALL_BILANS = {1: BILAN_1, 2: BILAN_2, 3: BILAN_3, 4: BILAN_4, 5: BILAN_5, 6: BILAN_6}
SOME_BILANS = {n: b for n, b in ALL_BILANS.items() if n != 3}
PDF = "application/pdf"

# Insertion order follows the foreign keys. organizations and availability_slots have no
# RLS: they are only there for the references. In session_bookings, consultant_id and
# organization_id are filled from the slot by the trigger of 015 (completed below).
DATA: dict[str, list[Row]] = {
    "organizations": rows_of(
        "id name slug siret email",
        (ORG_A, "Cap Avenir", "cap-avenir", "12345678900011", "contact@capavenir.fr"),
        (ORG_B, "Horizons", "horizons", "98765432100022", "bonjour@horizons.fr"),
    ),
    "users": rows_of(
        "id email password_hash first_name last_name role organization_id",
        user_row(ADMIN_A, "Anne", "Leroy"),
        user_row(ADMIN_B, "Marc", "Petit"),
        user_row(CONS_A, "Claire", "Martin"),
        user_row(CONS_B, "Luc", "Bernard"),
        user_row(BEN_A1, "Paul", "Durand"),
        user_row(BEN_B, "Sophie", "Moreau"),
        user_row(BEN_A3, "Karim", "Haddad"),
        user_row(BEN_B2, "Julie", "Roux"),
    ),
    "bilans": rows_of(
        "id beneficiary_id consultant_id organization_id status start_date actual_end_date",
        (BILAN_1, BEN_A1.id, CONS_A.id, ORG_A, "investigation", "2025-09-01", None),
        (BILAN_2, BEN_B.id, CONS_A.id, ORG_B, "preliminary", "2025-10-01", None),
        (BILAN_3, BEN_A3.id, None, ORG_A, "draft", None, None),
        (BILAN_4, BEN_B.id, CONS_B.id, ORG_B, "completed", "2025-01-10", "2025-03-20"),
        (BILAN_5, BEN_A3.id, CONS_B.id, ORG_A, "cancelled", "2025-02-01", None),
        (BILAN_6, BEN_B2.id, CONS_B.id, ORG_B, "investigation", "2025-11-01", None),
    ),
    "competencies": rows_of(
        "id bilan_id name", *[(i, b, "Gestion de projet") for i, b in per_bilan("competency", ALL_BILANS)]
    ),
    "recommendations": rows_of(
        "id bilan_id type title",
        *[(i, b, "job", "Formateur") for i, b in per_bilan("recommendation", SOME_BILANS)],
    ),
    "sessions": rows_of(
        "id bilan_id scheduled_at",
        *[(i, b, "2025-10-02 10:00+02") for i, b in per_bilan("session", SOME_BILANS)],
    ),
    "documents": rows_of(
        "id user_id organization_id bilan_id title file_url",
        (uid("document of A1 (org A)"), BEN_A1.id, ORG_A, BILAN_1, "Convention", "s3://d/1.pdf"),
        (uid("document of B (org B)"), BEN_B.id, ORG_B, BILAN_4, "Synthèse", "s3://d/2.pdf"),
        (uid("document of A3 (no org)"), BEN_A3.id, None, None, "CV", "s3://d/3.pdf"),
        (uid("document of consultant B (org B)"), CONS_B.id, ORG_B, None, "Certificat", "s3://d/4.pdf"),
        (uid("document of B2 (org B)"), BEN_B2.id, ORG_B, BILAN_6, "Convention", "s3://d/5.pdf"),
    ),
    "conversations": rows_of(
        "id beneficiary_id consultant_id organization_id bilan_id",
        (CONVERSATION_1, BEN_A1.id, CONS_A.id, ORG_A, BILAN_1),
        (uid("conversation B / consultant B"), BEN_B.id, CONS_B.id, ORG_B, None),
        (uid("conversation A3 / nobody"), BEN_A3.id, None, ORG_A, None),
        (uid("conversation B2 / consultant B"), BEN_B2.id, CONS_B.id, ORG_B, BILAN_6),
    ),
    "messages": rows_of(
        "id sender_id recipient_id content conversation_id",
        *[
            (uid(f"message {s.name} -> {r.name}"), s.id, r.id, "Bonjour", conversation)
            for s, r, conversation in [
                (BEN_A1, CONS_A, None),
                (CONS_A, BEN_A1, CONVERSATION_1),
                (CONS_B, BEN_B, None),
                (ADMIN_A, BEN_A3, None),
                (CONS_B, ADMIN_B, None),
                (BEN_B, CONS_A, None),
                (BEN_B2, CONS_B, None),
            ]
        ],
    ),
    "files": rows_of(
        "id user_id organization_id file_name storage_path mime_type file_size_bytes",
        (uid("file of A1 (org A)"), BEN_A1.id, ORG_A, "cv.pdf", "u/1.pdf", PDF, 1000),
        (uid("file of A1 (filed under org B)"), BEN_A1.id, ORG_B, "cv.pdf", "u/2.pdf", PDF, 1000),
        (uid("file of B (org B)"), BEN_B.id, ORG_B, "cv.pdf", "u/3.pdf", PDF, 1000),
        (uid("file of A3 (no org)"), BEN_A3.id, None, "cv.pdf", "u/4.pdf", PDF, 1000),
        (uid("file of B2 (org B)"), BEN_B2.id, ORG_B, "cv.pdf", "u/5.pdf", PDF, 1000),
    ),
    "cv_analyses": rows_of(
        "id user_id", *[(uid(f"cv analysis of {u.name}"), u.id) for u in (BEN_A1, BEN_B, BEN_A3, BEN_B2)]
    ),
    "job_recommendations": rows_of(
        "id user_id job_title",
        *[(uid(f"job recommendation of {u.name}"), u.id, "Formateur") for u in (BEN_A1, BEN_A3, BEN_B2)],
    ),
    "personality_analyses": rows_of(
        "id user_id analysis_type mbti_type riasec_code",
        (uid("personality analysis of A1"), BEN_A1.id, "mbti", "ENTJ", None),
        (uid("personality analysis of B"), BEN_B.id, "riasec", None, "SEC"),
        (uid("personality analysis of B2"), BEN_B2.id, "mbti", "ISFP", None),
    ),
    "action_plans": rows_of(
        "id user_id consultant_id title",
        *[
            (uid(f"action plan of {u.name} with {c.name}"), u.id, c.id, "Plan")
            for u, c in [(BEN_A1, CONS_A), (BEN_B, CONS_B), (BEN_A3, CONS_B), (BEN_B2, CONS_B)]
        ],
    ),
    "availability_slots": rows_of(
        "id consultant_id organization_id starts_at ends_at capacity",
        (SLOT_A, CONS_A.id, ORG_A, "2030-01-07 10:00+01", "2030-01-07 12:00+01", 3),
        (SLOT_B, CONS_B.id, ORG_B, "2030-01-08 10:00+01", "2030-01-08 11:00+01", 2),
    ),
    "session_bookings": rows_of(
        "id slot_id beneficiary_id bilan_id",
        (uid("booking of A1 on slot A"), SLOT_A, BEN_A1.id, BILAN_1),
        (uid("booking of A3 on slot A"), SLOT_A, BEN_A3.id, None),
        (uid("booking of B on slot A"), SLOT_A, BEN_B.id, None),
        (uid("booking of B on slot B"), SLOT_B, BEN_B.id, BILAN_4),
        (uid("booking of B2 on slot B"), SLOT_B, BEN_B2.id, BILAN_6),
    ),
    "assessments": rows_of(
        "id beneficiary_id consultant_id organization_id bilan_id assessment_type title",
        (uid("assessment of A1"), BEN_A1.id, CONS_A.id, ORG_A, BILAN_1, "skills", "Compétences"),
        (uid("assessment of B"), BEN_B.id, CONS_B.id, ORG_B, BILAN_4, "career", "Projet"),
        (uid("assessment of A3"), BEN_A3.id, None, ORG_A, None, "values", "Valeurs"),
        (uid("assessment of B2"), BEN_B2.id, CONS_B.id, ORG_B, BILAN_6, "skills", "Compétences"),
    ),
}
INSERTED_COLUMNS = {t: list(rows[0]) for t, rows in DATA.items()}

# The booking rows as the trigger completes them, for the model.
_SLOTS = {s["id"]: s for s in DATA["availability_slots"]}
for _booking in DATA["session_bookings"]:
    _booking["consultant_id"] = _SLOTS[_booking["slot_id"]]["consultant_id"]
    _booking["organization_id"] = _SLOTS[_booking["slot_id"]]["organization_id"]

# Columns the policies depend on: compared with the database after insertion.
POLICY_COLUMNS = {
    "users": ["id", "role", "organization_id"],
    "bilans": ["id", "beneficiary_id", "consultant_id", "organization_id", "status"],
    "competencies": ["id", "bilan_id"],
    "recommendations": ["id", "bilan_id"],
    "sessions": ["id", "bilan_id"],
    "documents": ["id", "user_id", "organization_id"],
    "files": ["id", "user_id", "organization_id"],
    "messages": ["id", "sender_id", "recipient_id"],
    "cv_analyses": ["id", "user_id"],
    "job_recommendations": ["id", "user_id"],
    "personality_analyses": ["id", "user_id"],
    "action_plans": ["id", "user_id", "consultant_id"],
    "session_bookings": ["id", "beneficiary_id", "consultant_id", "organization_id"],
    "assessments": ["id", "beneficiary_id", "consultant_id", "organization_id"],
    "conversations": ["id", "beneficiary_id", "consultant_id", "organization_id"],
}

# ---------------------------------------------------------------------------------------
# The expected-visibility model (002's rules), independent of the database
# ---------------------------------------------------------------------------------------
BILANS = {b["id"]: b for b in DATA["bilans"]}


def consults(viewer: User, beneficiary_id: object) -> bool:
    """app_is_consultant_of: a non-cancelled bilan links the consultant and the beneficiary."""
    return any(
        b["beneficiary_id"] == beneficiary_id
        and b["consultant_id"] == viewer.id
        and b["status"] != "cancelled"
        for b in BILANS.values()
    )


def can_read(viewer: User, owner_id: object, org_id: object = None) -> bool:
    """app_can_read(owner, organization)."""
    if owner_id == viewer.id:
        return True
    if org_id is None:
        owner = USER_BY_ID.get(str(owner_id))
        org_id = owner.org if owner else None
    same_org = org_id is not None and org_id == viewer.org
    if viewer.role == "consultant":
        return consults(viewer, owner_id) or same_org
    if viewer.role == "admin":
        return same_org
    return False


def bilan_visible(viewer: User, bilan_id: object) -> bool:
    """app_bilan_visible: the bilan's consultant, or app_can_read on its beneficiary."""
    b = BILANS[str(bilan_id)]
    return b["consultant_id"] == viewer.id or can_read(viewer, b["beneficiary_id"], b["organization_id"])


def _consultant_or_beneficiary(viewer: User, r: Row) -> bool:
    return r["consultant_id"] == viewer.id or can_read(viewer, r["beneficiary_id"], r["organization_id"])


RULES: dict[str, Callable[[User, Row], bool]] = {
    "users": lambda v, r: can_read(v, r["id"], r["organization_id"]),
    "bilans": _consultant_or_beneficiary,
    "competencies": lambda v, r: bilan_visible(v, r["bilan_id"]),
    "recommendations": lambda v, r: bilan_visible(v, r["bilan_id"]),
    "sessions": lambda v, r: bilan_visible(v, r["bilan_id"]),
    "documents": lambda v, r: can_read(v, r["user_id"], r["organization_id"]),
    "files": lambda v, r: can_read(v, r["user_id"], r["organization_id"]),
    "messages": lambda v, r: can_read(v, r["sender_id"]) or can_read(v, r["recipient_id"]),
    "cv_analyses": lambda v, r: can_read(v, r["user_id"]),
    "job_recommendations": lambda v, r: can_read(v, r["user_id"]),
    "personality_analyses": lambda v, r: can_read(v, r["user_id"]),
    "action_plans": lambda v, r: r["consultant_id"] == v.id or can_read(v, r["user_id"]),
    "session_bookings": _consultant_or_beneficiary,
    "assessments": _consultant_or_beneficiary,
    "conversations": _consultant_or_beneficiary,
}


def all_ids(table: str) -> set[str]:
    return {str(r["id"]) for r in DATA[table]}


def expected(table: str, viewer: User) -> set[str]:
    return {str(r["id"]) for r in DATA[table] if RULES[table](viewer, r)}


# ---------------------------------------------------------------------------------------
# Database helpers
# ---------------------------------------------------------------------------------------
def visible(conn: psycopg.Connection, table: str) -> set[str]:
    query = sql.SQL("SELECT id::text FROM {}").format(sql.Identifier(table))
    return {row[0] for row in conn.execute(query).fetchall()}


def act_as(conn: psycopg.Connection, user_id: str, role: str, org: str) -> None:
    """Set the three request settings for the session ('' = unset)."""
    conn.execute(
        "SELECT set_config('app.current_user_id', %s, false), set_config('app.current_user_role', %s, false),"
        " set_config('app.current_organization_id', %s, false)",
        [user_id, role, org],
    )


def names(ids: set[str]) -> list[str]:
    return sorted(NAMES.get(i, i) for i in ids)


def insert(conn: psycopg.Connection, table: str, row: Row) -> None:
    cols = INSERTED_COLUMNS[table]
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    conn.execute(query, [row[c] for c in cols])


def populate(url: str) -> None:
    """Insert DATA as the owner, then create the application role and grant it SELECT."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for table, rows in DATA.items():
            for row in rows:
                insert(conn, table, row)
        conn.execute(
            sql.SQL(
                "DO $do$ BEGIN"
                " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN"
                " CREATE ROLE {role} NOLOGIN; END IF;"
                " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;"
                " END $do$"
            ).format(name=sql.Literal(APP_ROLE), role=sql.Identifier(APP_ROLE))
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(APP_ROLE)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(APP_ROLE))
        )


@pytest.fixture(scope="module")
def rls_db(server: Sandbox) -> Iterator[str]:
    """One migrated and populated database for the module; dropped afterwards."""
    name = "rls_" + uuid.uuid4().hex[:12]
    url = server.new_db(name)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("DATABASE_URL", raising=False)
            mp.setenv("BILANTOOLS_HOME", str(server.home))
            mp.setenv("TQDM_DISABLE", "1")
            result = commands.apply(target=url, project=REPO / "migrations")
        assert [s.outcome for s in result.steps] == ["applied"] * 29
        populate(url)
        yield url
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------
def test_rls_is_enabled_on_exactly_the_expected_tables(rls_db: str) -> None:
    with psycopg.connect(rls_db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relforcerowsecurity, pg_get_userbyid(c.relowner),"
            " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
            " AND c.relrowsecurity ORDER BY 1"
        ).fetchall()
        app = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [APP_ROLE]
        ).fetchone()
    assert [r[0] for r in rows] == RLS_TABLES
    assert all(not forced and owner != APP_ROLE and policies > 0 for _, forced, owner, policies in rows)
    # The role the tests query as must be subject to RLS.
    assert app == (False, False, False)


@pytest.mark.parametrize("table", RLS_TABLES)
def test_each_user_sees_exactly_their_permitted_rows(rls_db: str, table: str) -> None:
    everything = all_ids(table)
    per_user = {u.id: expected(table, u) for u in USERS}
    # The data must make this table discriminating: a policy reduced to USING (true), or
    # to nothing, or that ignored the organization or the role, would change some set.
    assert everything
    assert any(per_user[u.id] for u in USERS if u.role == "beneficiary")
    assert any(per_user[u.id] - {u.id} for u in USERS if u.role == "consultant")
    assert per_user[ADMIN_A.id] != per_user[ADMIN_B.id]
    assert all(ids < everything for ids in per_user.values())

    with psycopg.connect(rls_db, autocommit=True) as conn:
        # As the owner (superuser): every inserted row, with the values the model assumes.
        cols = POLICY_COLUMNS[table]
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
            sql.Identifier(table),
        )
        stored = sorted(conn.execute(query).fetchall(), key=str)
        inserted = sorted(
            (tuple(None if r.get(c) is None else str(r[c]) for c in cols) for r in DATA[table]), key=str
        )
        assert stored == inserted

        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)))
        assert conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)

        # No user set (the settings were never defined in this session): nothing.
        assert visible(conn, table) == set()

        for user in USERS:
            # With role and organization set explicitly, then with only the user id (role
            # and organization read from the users row): the same rows.
            for role, org in ((user.role, user.org), ("", "")):
                act_as(conn, user.id, role, org)
                got = visible(conn, table)
                want = per_user[user.id]
                assert got == want, (
                    f"{table} as {user.name} (role setting {role!r}): "
                    f"missing {names(want - got)}, unexpected {names(got - want)}"
                )

        # A user id cleared while the role and organization of an admin remain: nothing.
        act_as(conn, "", ADMIN_A.role, ADMIN_A.org)
        assert visible(conn, table) == set()
        # RESET after a user was set: nothing.
        act_as(conn, ADMIN_B.id, ADMIN_B.role, ADMIN_B.org)
        assert visible(conn, table) == per_user[ADMIN_B.id]
        for setting in SETTINGS:
            conn.execute(sql.SQL("RESET {}").format(sql.Identifier(*setting.split("."))))
        assert visible(conn, table) == set()
