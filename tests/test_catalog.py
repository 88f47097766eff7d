"""bilantools.db.catalog on a real PostgreSQL: the values it reports for the 29 migrations,
then each kind of problem created on purpose and reported exactly, and one query per call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from bilantools import commands
from bilantools.db import catalog
from bilantools.db.stats import schema_stats

pytestmark = pytest.mark.pg15
REPO = Path(__file__).resolve().parent.parent
MIGRATIONS = REPO / "migrations"

RLS_TABLES = {
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
}


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection (autocommit) to a fresh database with the 29 migrations applied."""
    commands.apply(target=db_url, project=MIGRATIONS)
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def by(frame: pd.DataFrame, *keys: str) -> pd.DataFrame:
    """Index a frame by its name columns, to read one row with .loc."""
    return frame.set_index(list(keys))


# -- the migrated schema, as it is ------------------------------------------------------------


def test_tables_of_the_migrated_schema(db: psycopg.Connection) -> None:
    frame = catalog.tables(db)
    assert list(frame.columns) == [
        "table",
        "estimated_rows",
        "table_bytes",
        "index_bytes",
        "total_bytes",
        "has_primary_key",
        "rls_enabled",
        "rls_forced",
        "partitioned",
        "partitions",
    ]
    assert len(frame) == 45 and frame["table"].is_unique and list(frame["table"]) == sorted(frame["table"])
    assert {"users", "bilans", "qualiopi_indicators", "schema_migrations", "schema_migration_events"} <= set(
        frame["table"]
    )
    assert frame.has_primary_key.all()
    assert frame.rls_enabled.sum() == 15 and not frame.rls_forced.any()
    assert not frame.partitioned.any() and (frame.partitions == 0).all()
    assert (frame.total_bytes == frame.table_bytes + frame.index_bytes).all()
    assert (frame.index_bytes > 0).all()
    rows = by(frame, "table")
    assert rows.loc["qualiopi_indicators", "table_bytes"] > 0  # 32 seeded rows
    db.execute("ANALYZE qualiopi_indicators")
    assert by(catalog.tables(db), "table").loc["qualiopi_indicators", "estimated_rows"] == 32


def test_columns_of_the_migrated_schema(db: psycopg.Connection) -> None:
    frame = catalog.columns(db)
    assert list(frame.columns) == [
        "table",
        "column",
        "position",
        "type",
        "nullable",
        "default",
        "identity",
        "generated",
    ]
    expected = db.execute(
        "SELECT count(*) FROM information_schema.columns c JOIN information_schema.tables t"
        " USING (table_schema, table_name) WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    ).fetchone()
    assert expected is not None and len(frame) == expected[0]
    assert frame["table"].nunique() == 45
    cols = by(frame, "table", "column")
    email = cols.loc[("users", "email")]
    assert (email.type, email.nullable, pd.isna(email.default)) == ("character varying(255)", False, True)
    status = cols.loc[("action_plans", "status")]
    assert status.default == "'draft'::character varying" and not status.nullable
    assert cols.loc[("action_plans", "id"), "position"] == 1
    assert cols.loc[("schema_migrations", "id"), "default"].startswith("nextval(")
    identity = frame[frame.identity.notna()]
    assert set(zip(identity["table"], identity["column"], identity.identity, strict=True)) == {
        ("audit_logs", "id", "always"),
        ("document_access_log", "id", "always"),
        ("qualiopi_audit_log", "id", "always"),
    }
    assert identity["default"].isna().all() and frame.generated.isna().all()


def test_indexes_of_the_migrated_schema(db: psycopg.Connection) -> None:
    frame = catalog.indexes(db)
    assert list(frame.columns) == [
        "table",
        "index",
        "definition",
        "bytes",
        "scans",
        "unique",
        "primary",
        "valid",
        "unused",
        "duplicate_of",
        "redundant_prefix_of",
        "stats_reset",
    ]
    assert len(frame) == 218 == schema_stats(db, "x", {}).totals["indexes"]
    assert frame.valid.all() and frame.primary.sum() == 45 and frame.duplicate_of.isna().all()
    # Freshly migrated: at most the unique keys the seeds' ON CONFLICT probed were scanned
    # (when the migrating session has flushed its statistics), so every index that
    # enforces nothing is unused.
    assert frame[frame.scans > 0]["unique"].all()
    assert (frame.unused == ~frame["unique"]).all()
    # Two single-column indexes of the migrations are the left prefix of a longer one.
    prefixes = frame[frame.redundant_prefix_of.notna()]
    assert dict(zip(prefixes["index"], prefixes.redundant_prefix_of, strict=True)) == {
        "idx_bilans_organization_id": "idx_bilans_org_status",
        "idx_competencies_bilan_id": "competencies_bilan_name_key",
    }
    rows = by(frame, "index")
    assert rows.loc["users_pkey", "definition"] == (
        "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)"
    )
    assert rows.loc["users_pkey", "bytes"] > 0
    assert "stats_reset" in frame.attrs


def test_index_scans_and_stats_reset(db: psycopg.Connection) -> None:
    db.execute("SELECT pg_stat_reset()")
    db.execute("SET enable_seqscan = off")
    db.execute("SELECT * FROM sessions WHERE status = 'planned'")
    db.execute("SELECT pg_stat_force_next_flush()")  # flushed when this statement ends
    db.execute("SELECT 1")
    frame = catalog.indexes(db)
    rows = by(frame, "index")
    assert rows.loc["idx_sessions_status", "scans"] >= 1
    assert not rows.loc["idx_sessions_status", "unused"]
    assert rows.loc["idx_sessions_scheduled_at", "unused"]
    reset = frame.attrs["stats_reset"]
    assert isinstance(reset, pd.Timestamp) and (frame.stats_reset == reset).all()
    assert abs((pd.Timestamp.now(tz="UTC") - reset).total_seconds()) < 600


def test_constraints_of_the_migrated_schema(db: psycopg.Connection) -> None:
    frame = catalog.constraints(db)
    assert list(frame.columns) == ["table", "name", "type", "definition", "validated"]
    assert frame.type.value_counts().to_dict() == {
        "foreign key": 97,
        "check": 200,
        "primary key": 45,
        "unique": 25,
    }
    assert frame.validated.all()
    row = by(frame, "table", "name").loc[("action_plans", "action_plans_user_id_fkey")]
    assert (row.type, row.definition) == (
        "foreign key",
        "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE",
    )


def test_foreign_keys_without_index_of_the_migrated_schema(db: psycopg.Connection) -> None:
    frame = catalog.foreign_keys_without_index(db)
    assert list(frame.columns) == ["table", "constraint", "columns", "referenced_table", "partly_covered_by"]
    rows = {r.constraint: (r.columns, r.referenced_table, r.partly_covered_by) for r in frame.itertuples()}
    # auth_sessions' only index on user_id is partial (revoked_at IS NULL): the check of a
    # deleted user cannot use it. The three others are composite FKs served by an index on
    # their first column (partial on "IS NOT NULL", which the check's equality implies).
    assert rows.keys() == {
        "auth_sessions_user_id_fkey",
        "assessment_competencies_draft_id_fkey",
        "document_archive_survey_id_fkey",
        "qualiopi_evidence_survey_id_fkey",
    }
    assert rows["auth_sessions_user_id_fkey"][:2] == ("user_id", "users")
    assert pd.isna(rows["auth_sessions_user_id_fkey"][2])
    assert rows["qualiopi_evidence_survey_id_fkey"] == (
        "survey_id, organization_id",
        "satisfaction_surveys",
        "idx_qualiopi_evidence_survey_id",
    )
    assert rows["assessment_competencies_draft_id_fkey"][2] == "idx_assessment_competencies_draft_id"


def test_rls_and_policies_of_the_migrated_schema(db: psycopg.Connection) -> None:
    frame = catalog.rls(db)
    assert list(frame.columns) == [
        "table",
        "rls_enabled",
        "rls_forced",
        "policies",
        "commands",
        "roles",
        "enabled_without_policy",
        "policies_without_rls",
    ]
    assert len(frame) == 45
    enabled = frame[frame.rls_enabled]
    assert set(enabled["table"]) == RLS_TABLES
    assert not frame.enabled_without_policy.any() and not frame.policies_without_rls.any()
    assert frame.policies.sum() == 32
    users = by(frame, "table").loc["users"]
    assert (users.policies, users.commands, users.roles) == (2, "SELECT, ALL", "public")
    unprotected = by(frame, "table").loc["schema_migrations"]
    assert (unprotected.policies, unprotected.commands, pd.isna(unprotected.roles)) == (0, "", True)

    pol = catalog.policies(db)
    assert list(pol.columns) == ["table", "policy", "permissive", "command", "roles", "using", "with_check"]
    assert len(pol) == 32 and pol.permissive.all()
    assert pol.command.value_counts().to_dict() == {
        "SELECT": 15,
        "ALL": 14,
        "INSERT": 1,
        "UPDATE": 1,
        "DELETE": 1,
    }
    messages = by(frame, "table").loc["messages"]
    assert (messages.policies, messages.commands) == (4, "SELECT, INSERT, UPDATE, DELETE")
    assert set(pol["table"]) == set(enabled["table"])
    select = by(pol, "table", "policy").loc[("action_plans", "action_plans_select")]
    assert select.using == "((consultant_id = app_current_user_id()) OR app_can_read(user_id))"
    assert pd.isna(select.with_check)


def test_triggers_functions_sequences_extensions_of_the_migrated_schema(db: psycopg.Connection) -> None:
    trig = catalog.triggers(db)
    assert list(trig.columns) == ["table", "trigger", "definition", "enabled", "function"]
    assert len(trig) == 65 and set(trig.enabled) == {"enabled"}
    row = by(trig, "table", "trigger").loc[("users", "trg_users_updated_at")]
    assert row.definition.startswith("CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON public.users")
    assert row.function == "set_updated_at()"

    fn = catalog.functions(db)
    assert list(fn.columns) == [
        "name",
        "kind",
        "language",
        "security_definer",
        "search_path",
        "search_path_pinned",
        "volatility",
        "returns",
        "owner",
        "extension",
        "definer_without_search_path",
    ]
    assert len(fn) == 45 == schema_stats(db, "x", {}).totals["functions"]
    definers = fn[fn.security_definer]
    assert len(definers) == 14 and definers.search_path_pinned.all()
    assert set(definers.search_path) == {"public, pg_temp"}
    assert not fn.definer_without_search_path.any()
    current = by(fn, "name").loc["app_current_role()"]
    assert (current.language, current.volatility, current.returns) == ("sql", "stable", "text")
    assert "record_migration(character varying,text,character varying,text,integer)" in set(fn["name"])

    seq = catalog.sequences(db)
    assert list(seq.columns) == [
        "name",
        "data_type",
        "last_value",
        "max_value",
        "increment",
        "cycle",
        "owned_by",
        "limit_value",
        "used_fraction",
        "close_to_max",
    ]
    assert len(seq) == 5 and not seq.close_to_max.any()
    tracking = by(seq, "name").loc["schema_migrations_id_seq"]
    assert (tracking.data_type, tracking.limit_value, tracking.owned_by) == (
        "integer",
        2147483647,
        "schema_migrations.id",
    )
    assert tracking.last_value == 29
    never_used = by(seq, "name").loc["audit_logs_id_seq"]
    assert pd.isna(never_used.last_value) and never_used.used_fraction == 0

    ext = catalog.extensions(db)
    assert list(ext.columns) == ["name", "version", "schema"]
    assert by(ext, "name").loc["plpgsql", "schema"] == "pg_catalog"


def test_summary_matches_the_frames_and_stats(db: psycopg.Connection) -> None:
    totals = catalog.summary(db)
    assert totals == {
        "tables": 45,
        "tables_without_primary_key": 0,
        "total_bytes": totals["total_bytes"],
        "indexes": 218,
        "invalid_indexes": 0,
        "constraints_not_validated": 0,
        "foreign_keys_without_index": 4,
        "rls_tables": 15,
        "rls_without_policy": 0,
        "policies": 32,
        "triggers": 65,
        "disabled_triggers": 0,
        "functions": 45,
        "definer_without_search_path": 0,
        "sequences": 5,
        "extensions": 1,
    }
    assert totals["total_bytes"] == catalog.tables(db).total_bytes.sum()
    stats = schema_stats(db, "x", {}).totals
    assert {k: totals[k] for k in stats} == stats


# -- problems made on purpose --------------------------------------------------------------


def test_duplicate_and_prefix_indexes(db: psycopg.Connection) -> None:
    db.execute("CREATE INDEX aa_sessions_status_copy ON sessions (status)")  # older one is kept
    db.execute("CREATE INDEX sessions_status_desc ON sessions (status DESC)")  # other order
    db.execute("CREATE INDEX sessions_status_hash ON sessions USING hash (status)")  # other method
    db.execute("CREATE INDEX sessions_status_planned ON sessions (status) WHERE status = 'planned'")
    db.execute("CREATE INDEX sessions_consultant_when ON sessions (consultant_id, scheduled_at)")
    db.execute("CREATE UNIQUE INDEX sessions_id_when ON sessions (id, scheduled_at)")
    db.execute("CREATE INDEX users_email_plain ON users (lower(email::text))")  # = the unique one
    db.execute("CREATE INDEX users_names_copy ON users (lower(last_name::text), lower(first_name::text))")
    db.execute("CREATE INDEX users_last_name_only ON users (lower(last_name::text))")
    db.execute("CREATE INDEX users_role_active ON users (role) WHERE deleted_at IS NULL")
    db.execute("CREATE INDEX users_role_org ON users (role, organization_id)")

    rows = by(catalog.indexes(db), "index")
    dups = rows.duplicate_of.dropna().to_dict()
    assert dups == {
        "aa_sessions_status_copy": "idx_sessions_status",
        "users_email_plain": "users_email_lower_key",
        "users_names_copy": "idx_users_last_name",
    }
    prefixes = rows.redundant_prefix_of.dropna().to_dict()
    assert prefixes == {
        "idx_bilans_organization_id": "idx_bilans_org_status",  # from the migrations
        "idx_competencies_bilan_id": "competencies_bilan_name_key",
        "idx_sessions_consultant_id": "sessions_consultant_when",
        "users_last_name_only": "idx_users_last_name",  # expressions compare too
        "idx_users_role": "users_role_org",  # not users_role_active: other predicate
    }
    # The primary key is a prefix of sessions_id_when, but unique: it enforces something.
    assert pd.isna(rows.loc["sessions_pkey", "redundant_prefix_of"])
    assert not rows.loc["users_email_plain", "unique"] and rows.loc["users_email_plain", "unused"]
    summary = catalog.summary(db)
    assert summary["indexes"] == 218 + 11


def test_exclusion_constraint_index_is_not_unused(db: psycopg.Connection) -> None:
    db.execute(
        "CREATE TABLE rooms (id int PRIMARY KEY, during tstzrange, EXCLUDE USING gist (during WITH &&))"
    )
    db.execute("CREATE INDEX rooms_during ON rooms USING gist (during)")
    rows = by(catalog.indexes(db), "index")
    backing = rows.loc["rooms_during_excl"]
    # Not unique and never scanned, but it enforces the constraint: not "unused".
    assert (backing["unique"], backing.scans, backing.unused) == (False, 0, False)
    assert rows.loc["rooms_during", "unused"]
    # Same method and column: the plain index duplicates the constraint's, which is kept.
    assert rows.loc["rooms_during", "duplicate_of"] == "rooms_during_excl"
    con = by(catalog.constraints(db), "name").loc["rooms_during_excl"]
    assert (con.type, con.definition) == ("exclusion", "EXCLUDE USING gist (during WITH &&)")


def test_invalid_index_is_reported(db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    db.execute("INSERT INTO notes VALUES (1, 'same'), (2, 'same')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY notes_body_key ON notes (body)")
    row = by(catalog.indexes(db), "index").loc["notes_body_key"]
    assert not row.valid and row["unique"]
    assert catalog.summary(db)["invalid_indexes"] == 1


def test_not_valid_constraint(db: psycopg.Connection) -> None:
    db.execute(
        "ALTER TABLE sessions ADD CONSTRAINT sessions_duration_sane CHECK (duration_minutes < 1000) NOT VALID"
    )
    frame = by(catalog.constraints(db), "table", "name")
    row = frame.loc[("sessions", "sessions_duration_sane")]
    assert (row.type, row.definition, row.validated) == (
        "check",
        "CHECK ((duration_minutes < 1000)) NOT VALID",
        False,
    )
    assert (~frame.validated).sum() == 1
    assert catalog.summary(db)["constraints_not_validated"] == 1
    db.execute("ALTER TABLE sessions VALIDATE CONSTRAINT sessions_duration_sane")
    assert catalog.constraints(db).validated.all()


def test_foreign_keys_without_index(db: psycopg.Connection) -> None:
    db.execute(
        "CREATE TABLE notes (id int PRIMARY KEY, user_id uuid REFERENCES users(id),"
        " bilan_id uuid REFERENCES bilans(id), session_id uuid REFERENCES sessions(id),"
        " message_id uuid REFERENCES messages(id), body text)"
    )
    db.execute("CREATE INDEX notes_bilan ON notes (bilan_id, id)")  # leading column: covered
    db.execute("CREATE INDEX notes_session_open ON notes (session_id) WHERE body IS NULL")  # not usable
    db.execute("CREATE INDEX notes_message ON notes (message_id) WHERE message_id IS NOT NULL")  # usable
    db.execute("CREATE TABLE pairs (a int, b int, PRIMARY KEY (a, b))")
    db.execute(
        "CREATE TABLE pair_refs (id int PRIMARY KEY, a int, b int, FOREIGN KEY (a, b) REFERENCES pairs)"
    )
    db.execute("CREATE INDEX pair_refs_ba ON pair_refs (b, a)")  # any order: covered
    db.execute(
        "CREATE TABLE pair_refs2 (id int PRIMARY KEY, a int, b int, FOREIGN KEY (a, b) REFERENCES pairs)"
    )
    db.execute("CREATE INDEX pair_refs2_a ON pair_refs2 (a)")

    frame = catalog.foreign_keys_without_index(db)
    new = frame[frame["table"].isin(["notes", "pair_refs", "pair_refs2"])]
    found = {r.constraint: (r.table, r.columns, r.referenced_table) for r in new.itertuples()}
    assert found == {
        "notes_user_id_fkey": ("notes", "user_id", "users"),
        "notes_session_id_fkey": ("notes", "session_id", "sessions"),
        "pair_refs2_a_b_fkey": ("pair_refs2", "a, b", "pairs"),
    }
    partly = by(new, "constraint").partly_covered_by
    assert partly["pair_refs2_a_b_fkey"] == "pair_refs2_a"
    assert partly[["notes_user_id_fkey", "notes_session_id_fkey"]].isna().all()
    assert len(frame) == 4 + 3 == catalog.summary(db)["foreign_keys_without_index"]
    db.execute("CREATE INDEX notes_user ON notes (user_id)")
    assert "notes_user_id_fkey" not in set(catalog.foreign_keys_without_index(db)["constraint"])


def test_rls_enabled_without_policy_and_policies_without_rls(db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    db.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
    db.execute("CREATE TABLE drafts (id int PRIMARY KEY, body text)")
    db.execute("CREATE POLICY drafts_read ON drafts FOR SELECT USING (true)")  # RLS is off
    db.execute("ALTER TABLE users FORCE ROW LEVEL SECURITY")

    frame = by(catalog.rls(db), "table")
    assert list(frame.index[frame.enabled_without_policy]) == ["notes"]
    assert list(frame.index[frame.policies_without_rls]) == ["drafts"]
    assert list(frame.index[frame.rls_forced]) == ["users"]
    assert frame.loc["drafts", "commands"] == "SELECT"
    assert catalog.summary(db)["rls_without_policy"] == 1
    assert by(catalog.tables(db), "table").loc["users", "rls_forced"]

    db.execute(
        "CREATE POLICY notes_own ON notes AS RESTRICTIVE FOR UPDATE TO postgres"
        " USING (body IS NOT NULL) WITH CHECK (body <> '')"
    )
    notes = by(catalog.rls(db), "table").loc["notes"]
    assert (notes.enabled_without_policy, notes.policies, notes.commands, notes.roles) == (
        False,
        1,
        "UPDATE",
        "postgres",
    )
    policy = by(catalog.policies(db), "policy").loc["notes_own"]
    assert (policy.permissive, policy.command, policy.roles, policy.using, policy.with_check) == (
        False,
        "UPDATE",
        "postgres",
        "(body IS NOT NULL)",
        "(body <> ''::text)",
    )


def test_trigger_states(db: psycopg.Connection) -> None:
    db.execute("ALTER TABLE users DISABLE TRIGGER trg_users_updated_at")
    db.execute("ALTER TABLE sessions ENABLE REPLICA TRIGGER trg_sessions_updated_at")
    db.execute("ALTER TABLE bilans ENABLE ALWAYS TRIGGER trg_bilans_audit")
    frame = catalog.triggers(db)
    states = frame[frame.enabled != "enabled"].set_index("trigger").enabled.to_dict()
    assert states == {
        "trg_users_updated_at": "disabled",
        "trg_sessions_updated_at": "replica",
        "trg_bilans_audit": "always",
    }
    assert catalog.summary(db)["disabled_triggers"] == 1


def test_security_definer_without_search_path(db: psycopg.Connection) -> None:
    db.execute("CREATE FUNCTION leaky(n int) RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT n + 1'")
    db.execute("CREATE PROCEDURE tidy() LANGUAGE plpgsql AS 'BEGIN NULL; END'")
    frame = by(catalog.functions(db), "name")
    leaky = frame.loc["leaky(integer)"]
    assert (leaky.security_definer, leaky.search_path_pinned, leaky.definer_without_search_path) == (
        True,
        False,
        True,
    )
    assert (leaky.kind, leaky.language, leaky.volatility, leaky.returns) == (
        "function",
        "sql",
        "volatile",
        "integer",
    )
    assert list(frame.index[frame.definer_without_search_path]) == ["leaky(integer)"]
    tidy = frame.loc["tidy()"]
    assert (tidy.kind, tidy.language, pd.isna(tidy.returns)) == ("procedure", "plpgsql", True)
    assert catalog.summary(db)["definer_without_search_path"] == 1
    db.execute("ALTER FUNCTION leaky(int) SET search_path = pg_catalog, pg_temp")
    leaky = by(catalog.functions(db), "name").loc["leaky(integer)"]
    assert (leaky.search_path, leaky.definer_without_search_path) == ("pg_catalog, pg_temp", False)


def test_sequences_close_to_max(db: psycopg.Connection) -> None:
    db.execute("SELECT setval('schema_migrations_id_seq', 1900000000)")
    db.execute("CREATE TABLE tickets (id int PRIMARY KEY)")
    db.execute("CREATE SEQUENCE tickets_seq AS bigint OWNED BY tickets.id")  # bigint behind an int
    db.execute("SELECT setval('tickets_seq', 2000000000)")
    db.execute("CREATE SEQUENCE countdown AS smallint INCREMENT BY -1")
    db.execute("SELECT setval('countdown', -32000)")
    frame = by(catalog.sequences(db), "name")
    tracking = frame.loc["schema_migrations_id_seq"]
    assert tracking.last_value == 1900000000 and tracking.close_to_max
    assert tracking.used_fraction == pytest.approx((1900000000 - 1) / (2147483647 - 1))
    tickets = frame.loc["tickets_seq"]
    assert (tickets.max_value, tickets.limit_value, tickets.owned_by) == (
        9223372036854775807,
        2147483647,
        "tickets.id",
    )
    assert tickets.close_to_max and tickets.used_fraction == pytest.approx(0.931, abs=1e-3)
    countdown = frame.loc["countdown"]
    assert (countdown.increment, countdown.limit_value, countdown.close_to_max) == (-1, -32768, True)
    assert countdown.used_fraction == pytest.approx(31999 / 32767)
    assert set(frame.index[frame.close_to_max]) == {"schema_migrations_id_seq", "tickets_seq", "countdown"}
    strict = by(catalog.sequences(db, threshold=0.95), "name")
    assert set(strict.index[strict.close_to_max]) == {"countdown"}


def test_sequences_without_reading_last_values_take_no_lock(db_url: str) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    locks = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE l.pid = pg_backend_pid() AND c.relkind = 'S'"
    )
    with psycopg.connect(db_url) as conn:  # not autocommit: the transaction stays open
        frame = catalog.sequences(conn, read_last_values=False)
        assert len(frame) == 5 and frame.last_value.isna().all() and frame.used_fraction.isna().all()
        assert not frame.close_to_max.any()
        assert conn.execute(locks).fetchone() == (0,)
        conn.rollback()
        assert by(catalog.sequences(conn), "name").loc["schema_migrations_id_seq", "last_value"] == 29
        assert conn.execute(locks).fetchone() == (5,)  # held until the transaction ends
        conn.rollback()
        assert conn.execute(locks).fetchone() == (0,)


def test_table_without_primary_key_and_partitioned_table(db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE loose (x int)")
    db.execute("CREATE TABLE events (id bigint, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)")
    db.execute(
        "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
    )
    db.execute(  # itself partitioned: its two partitions are leaves of events too
        "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
        " PARTITION BY RANGE (id)"
    )
    db.execute("CREATE TABLE events_2026_lo PARTITION OF events_2026 FOR VALUES FROM (0) TO (500)")
    db.execute("CREATE TABLE events_2026_hi PARTITION OF events_2026 FOR VALUES FROM (500) TO (MAXVALUE)")
    db.execute("INSERT INTO events SELECT g, date '2025-06-01' + (g % 400) FROM generate_series(1, 1000) g")
    db.execute("ANALYZE events")
    frame = by(catalog.tables(db), "table")
    assert len(frame) == 47 and not frame.index.str.startswith("events_").any()
    assert list(frame.index[~frame.has_primary_key]) == ["loose"]
    assert list(frame.index[frame.partitioned]) == ["events"]
    events = frame.loc["events"]
    assert (events.partitioned, events.partitions, events.has_primary_key) == (True, 3, True)
    assert events.estimated_rows == 1000
    sizes = db.execute(
        "SELECT sum(pg_table_size(c)), sum(pg_indexes_size(c)) FROM unnest("
        "ARRAY['events_2025'::regclass, 'events_2026_lo'::regclass, 'events_2026_hi'::regclass]) c"
    ).fetchone()
    assert sizes is not None and sizes[0] > 0 and sizes[1] > 0
    assert (events.table_bytes, events.index_bytes) == (sizes[0], sizes[1])
    assert events.total_bytes == sizes[0] + sizes[1]
    # Indexes are listed where they hold data: the partitioned index has no storage and no
    # scans of its own, so it is never "unused"; the partitions' own indexes are listed.
    db.execute("CREATE INDEX events_at ON events (at)")
    idx = catalog.indexes(db)
    rows = by(idx, "index")
    assert (rows.loc["events_at", "bytes"], rows.loc["events_at", "unused"]) == (0, False)
    assert rows.loc["events_2025_at_idx", "unused"] and rows.loc["events_2025_at_idx", "bytes"] > 0
    assert (rows.loc["events_pkey", "primary"], rows.loc["events_pkey", "unused"]) == (True, False)
    assert set(idx[idx["table"].str.startswith("events")]["table"]) == {
        "events",
        "events_2025",
        "events_2026",
        "events_2026_lo",
        "events_2026_hi",
    }
    assert catalog.summary(db)["tables_without_primary_key"] == 1
    # Partition columns and constraints are not listed twice either.
    assert "events_2025" not in set(catalog.columns(db)["table"])
    assert "events_2025" not in set(catalog.constraints(db)["table"])


# -- how it talks to the server -----------------------------------------------------------------


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.queries = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return self.conn.execute(*args, **kwargs)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("catalog functions go through conn.execute")


CALLS: dict[str, Callable[..., Any]] = {
    name: getattr(catalog, name)
    for name in (
        "tables",
        "columns",
        "indexes",
        "constraints",
        "foreign_keys_without_index",
        "rls",
        "policies",
        "triggers",
        "functions",
        "sequences",
        "extensions",
        "summary",
    )
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_call_sends_one_query(db: psycopg.Connection, name: str) -> None:
    counting = Counting(db)
    result = CALLS[name](counting)
    assert counting.queries == 1
    assert len(result) > 0


def test_another_schema_and_an_empty_one(db: psycopg.Connection) -> None:
    db.execute("CREATE SCHEMA side")
    db.execute("CREATE TABLE side.things (id int PRIMARY KEY, owner uuid REFERENCES public.users(id))")
    assert list(catalog.tables(db, "side")["table"]) == ["things"]
    fk = catalog.foreign_keys_without_index(db, schema="side")
    assert list(fk.referenced_table) == ["users"]
    db.execute("CREATE SCHEMA empty")
    for name, call in CALLS.items():
        if name in ("extensions", "summary"):
            continue
        frame = call(db, "empty")
        assert isinstance(frame, pd.DataFrame) and len(frame) == 0, name
    assert set(catalog.summary(db, "empty").values()) == {0, 1}  # only the one extension


def test_importing_the_module_does_not_import_pandas() -> None:
    code = "import sys, bilantools.db.catalog; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
