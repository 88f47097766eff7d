-- Migration 029: migration tracking system
--
-- Creates the tracking objects of the guide: the schema_migrations table (one
-- row per version) and the functions migration_applied(), record_migration(),
-- record_migration_failure() and get_migration_status(). The bilantools engine
-- already creates exactly these objects before migration 001
-- (bilantools/db/tracking.sql); the statements below are a verbatim copy
-- (CREATE TABLE IF NOT EXISTS / CREATE OR REPLACE FUNCTION with the same text),
-- so running 029 on an engine-managed database changes nothing, while a
-- database migrated by hand with psql gets the same tracking objects.
-- The engine-only event log (schema_migration_events) is not created here.
--
-- 029 adds one object of its own: the read-only view migration_history, the
-- history of applied and failed migrations in version order.
--
-- depends: 027, 028

CREATE TABLE IF NOT EXISTS schema_migrations (
    id                serial PRIMARY KEY,
    version           varchar(50)  NOT NULL UNIQUE,
    description       text,
    checksum          varchar(64),
    applied_at        timestamptz  NOT NULL DEFAULT now(),
    applied_by        varchar(255) DEFAULT current_user,
    execution_time_ms integer,
    success           boolean      NOT NULL DEFAULT true,
    error_message     text
);

CREATE OR REPLACE FUNCTION migration_applied(p_version varchar)
RETURNS boolean
LANGUAGE sql STABLE
AS $fn$
    SELECT EXISTS (
        SELECT 1 FROM schema_migrations
        WHERE version = p_version AND success
    );
$fn$;

CREATE OR REPLACE FUNCTION record_migration(
    p_version varchar,
    p_description text,
    p_checksum varchar DEFAULT NULL,
    p_applied_by text DEFAULT current_user,
    p_execution_time_ms integer DEFAULT NULL
)
RETURNS void
LANGUAGE sql
AS $fn$
    INSERT INTO schema_migrations
        (version, description, checksum, applied_at, applied_by,
         execution_time_ms, success, error_message)
    VALUES
        (p_version, p_description, p_checksum, now(), p_applied_by,
         p_execution_time_ms, true, NULL)
    ON CONFLICT (version) DO UPDATE SET
        description = EXCLUDED.description,
        checksum = EXCLUDED.checksum,
        applied_at = EXCLUDED.applied_at,
        applied_by = EXCLUDED.applied_by,
        execution_time_ms = EXCLUDED.execution_time_ms,
        success = true,
        error_message = NULL;
$fn$;

CREATE OR REPLACE FUNCTION record_migration_failure(
    p_version varchar,
    p_description text,
    p_error_message text
)
RETURNS void
LANGUAGE sql
AS $fn$
    INSERT INTO schema_migrations
        (version, description, applied_at, applied_by, success, error_message)
    VALUES
        (p_version, p_description, now(), current_user, false, p_error_message)
    ON CONFLICT (version) DO UPDATE SET
        description = EXCLUDED.description,
        applied_at = EXCLUDED.applied_at,
        applied_by = EXCLUDED.applied_by,
        execution_time_ms = NULL,
        success = false,
        error_message = EXCLUDED.error_message;
$fn$;

CREATE OR REPLACE FUNCTION get_migration_status()
RETURNS TABLE (
    total_migrations bigint,
    successful_migrations bigint,
    failed_migrations bigint,
    last_version varchar,
    last_applied_at timestamptz
)
LANGUAGE sql STABLE
AS $fn$
    SELECT count(*),
           count(*) FILTER (WHERE success),
           count(*) FILTER (WHERE NOT success),
           (SELECT version FROM schema_migrations WHERE success
             ORDER BY applied_at DESC, id DESC LIMIT 1),
           max(applied_at) FILTER (WHERE success)
    FROM schema_migrations;
$fn$;

-- Owned by 029 (dropped by its rollback).
CREATE OR REPLACE VIEW migration_history AS
    SELECT m.version,
           m.description,
           m.success,
           m.applied_at,
           m.applied_by,
           m.execution_time_ms,
           m.checksum,
           m.error_message
    FROM schema_migrations m
    ORDER BY m.version;

COMMENT ON VIEW migration_history IS
    'Applied and failed migrations in version order (read-only view over schema_migrations).';
