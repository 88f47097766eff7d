-- Tracking objects owned by the bilantools engine.
--
-- Signatures follow the guide's calls: record_migration('030', 'Add new feature', NULL,
-- CURRENT_USER, 1500) passes CURRENT_USER (type name), hence applied_by is text.
--
-- The engine runs this script (idempotently) before the first migration, so that
-- migration 001 is already tracked. Migration 029 creates the same table and the
-- same four functions with the same definitions: running it changes nothing.
-- The event log is the engine's own addition: schema_migrations keeps one row per
-- version (the guide's model), the event log keeps every apply, rollback, baseline
-- and repair so that history can be reconstructed.

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

-- Engine-only from here on: migration 029 does not create this.
CREATE TABLE IF NOT EXISTS schema_migration_events (
    id          bigserial    PRIMARY KEY,
    run_id      uuid         NOT NULL,
    version     varchar(50),
    action      varchar(20)  NOT NULL
        CHECK (action IN ('apply', 'rollback', 'baseline', 'repair', 'dry-run')),
    outcome     varchar(20)  NOT NULL
        CHECK (outcome IN ('success', 'failure', 'partial', 'started', 'lock-timeout')),
    actor       varchar(255) NOT NULL DEFAULT current_user,
    os_user     varchar(255),
    host        varchar(255),
    at          timestamptz  NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer,
    checksum    varchar(64),
    detail      text,
    tool_version varchar(50),
    backup      text
);
-- The backup taken before the change (bilantools backup), added after the first release.
ALTER TABLE schema_migration_events ADD COLUMN IF NOT EXISTS backup text;
-- 'started' marks a `transaction: off` migration before its first statement (added after
-- the first release), 'lock-timeout' an apply that gave up waiting for a lock after its
-- last attempt (a retryable stop, not a failure of the file; added after 'started'):
-- widen the check of event logs created before them.
DO $upgrade$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'schema_migration_events'::regclass
          AND conname = 'schema_migration_events_outcome_check'
          AND pg_get_constraintdef(oid) LIKE '%lock-timeout%'
    ) THEN
        ALTER TABLE schema_migration_events DROP CONSTRAINT IF EXISTS schema_migration_events_outcome_check;
        ALTER TABLE schema_migration_events ADD CONSTRAINT schema_migration_events_outcome_check
            CHECK (outcome IN ('success', 'failure', 'partial', 'started', 'lock-timeout'));
    END IF;
END
$upgrade$;
-- The fleet rollout that ran this change (`bilantools fleet`: one id shared by every
-- target's run; NULL for a single-target run), added after the first release.
ALTER TABLE schema_migration_events ADD COLUMN IF NOT EXISTS rollout_id uuid;
