-- Migration 002: security & standardization of the core schema
--
-- 1. Request-context helpers. The application connects with a non-owner role
--    and, per request, sets:
--        SET app.current_user_id   = '<uuid>'
--        SET app.current_user_role = 'beneficiary' | 'consultant' | 'admin'
--        SET app.current_organization_id = '<uuid>'   (optional)
--    app_current_user_id(), app_current_role() and app_current_organization_id()
--    read them (role and organization fall back to the users row). Nothing here
--    needs Supabase's auth schema: plain PostgreSQL session settings only.
--    app_can_read()/app_can_write() encode the access rules used by every
--    policy of this and later migrations:
--      * no user set                -> nothing
--      * beneficiary                -> own rows only
--      * consultant                 -> own rows, rows of their beneficiaries
--                                      (a non-cancelled bilan links them) and
--                                      rows of their organization (read only)
--      * admin                      -> rows of their organization
--    Table owners bypass RLS (no FORCE): migrations, cron jobs and sign-up run
--    as the owner; RLS protects the request-scoped application role.
-- 2. Business constraints on the core tables (e-mail, SIRET, phone formats,
--    24-hour legal maximum of a bilan, date ordering) and case-insensitive
--    e-mail uniqueness (replaces the plain UNIQUE(email) of 001).
-- 3. Triggers: e-mail normalisation, protection of users.role/organization_id,
--    bilan status workflow, audit trail into audit_logs, append-only audit_logs.
--    users_normalize() and its trigger are created only when absent: 003
--    extends them to users.cv_url and re-running 002 must not undo that.
-- 4. Indexes on every foreign key and common filter of the core tables.
-- 5. Row level security on users, bilans, competencies, recommendations,
--    documents, messages and sessions.
--
-- Note: creating users_email_lower_key fails if two accounts differ only by
-- the case of their e-mail; merge them first.

------------------------------------------------------------------------------
-- 1. Request-context helpers
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION app_current_user_id()
RETURNS uuid
LANGUAGE sql STABLE
AS $fn$
    SELECT nullif(current_setting('app.current_user_id', true), '')::uuid;
$fn$;

CREATE OR REPLACE FUNCTION app_current_role()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT CASE
        WHEN app_current_user_id() IS NULL THEN NULL
        ELSE coalesce(nullif(current_setting('app.current_user_role', true), ''),
                      (SELECT u.role::text FROM users u WHERE u.id = app_current_user_id()))
    END;
$fn$;

CREATE OR REPLACE FUNCTION app_current_organization_id()
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT CASE
        WHEN app_current_user_id() IS NULL THEN NULL
        ELSE coalesce(nullif(current_setting('app.current_organization_id', true), '')::uuid,
                      (SELECT u.organization_id FROM users u WHERE u.id = app_current_user_id()))
    END;
$fn$;

CREATE OR REPLACE FUNCTION app_user_organization(p_user_id uuid)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT u.organization_id FROM users u WHERE u.id = p_user_id;
$fn$;

CREATE OR REPLACE FUNCTION app_is_consultant_of(p_beneficiary_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT EXISTS (
        SELECT 1 FROM bilans b
        WHERE b.beneficiary_id = p_beneficiary_id
          AND b.consultant_id = app_current_user_id()
          AND b.status <> 'cancelled'
    );
$fn$;

CREATE OR REPLACE FUNCTION app_can_read(p_owner_id uuid, p_organization_id uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE
AS $fn$
    SELECT coalesce(CASE
        WHEN app_current_user_id() IS NULL THEN false
        WHEN p_owner_id = app_current_user_id() THEN true
        WHEN app_current_role() = 'consultant' THEN
            app_is_consultant_of(p_owner_id)
            OR coalesce(p_organization_id, app_user_organization(p_owner_id))
               = app_current_organization_id()
        WHEN app_current_role() = 'admin' THEN
            coalesce(p_organization_id, app_user_organization(p_owner_id))
            = app_current_organization_id()
        ELSE false
    END, false);
$fn$;

CREATE OR REPLACE FUNCTION app_can_write(p_owner_id uuid, p_organization_id uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE
AS $fn$
    SELECT coalesce(CASE
        WHEN app_current_user_id() IS NULL THEN false
        WHEN p_owner_id = app_current_user_id() THEN true
        WHEN app_current_role() = 'consultant' THEN app_is_consultant_of(p_owner_id)
        WHEN app_current_role() = 'admin' THEN
            coalesce(p_organization_id, app_user_organization(p_owner_id))
            = app_current_organization_id()
        ELSE false
    END, false);
$fn$;

CREATE OR REPLACE FUNCTION app_bilan_visible(p_bilan_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT EXISTS (
        SELECT 1 FROM bilans b
        WHERE b.id = p_bilan_id
          AND (b.consultant_id = app_current_user_id()
               OR app_can_read(b.beneficiary_id, b.organization_id))
    );
$fn$;

CREATE OR REPLACE FUNCTION app_bilan_writable(p_bilan_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT EXISTS (
        SELECT 1 FROM bilans b
        WHERE b.id = p_bilan_id
          AND (b.consultant_id = app_current_user_id()
               OR app_can_write(b.beneficiary_id, b.organization_id))
    );
$fn$;

COMMENT ON FUNCTION app_current_user_id() IS 'Current application user (setting app.current_user_id), NULL if unset.';
COMMENT ON FUNCTION app_can_read(uuid, uuid) IS 'RLS read rule for a row owned by p_owner_id in p_organization_id.';
COMMENT ON FUNCTION app_can_write(uuid, uuid) IS 'RLS write rule: owner, consultant of the owner, or admin of the organization.';

------------------------------------------------------------------------------
-- 2. Constraints
------------------------------------------------------------------------------

ALTER TABLE organizations
    DROP CONSTRAINT IF EXISTS organizations_siret_format_check,
    ADD CONSTRAINT organizations_siret_format_check CHECK (siret ~ '^[0-9]{14}$');
ALTER TABLE organizations
    DROP CONSTRAINT IF EXISTS organizations_email_format_check,
    ADD CONSTRAINT organizations_email_format_check
        CHECK (email ~* '^[^@\s]+@[^@\s]+\.[^@\s]+$');
ALTER TABLE organizations
    DROP CONSTRAINT IF EXISTS organizations_country_format_check,
    ADD CONSTRAINT organizations_country_format_check CHECK (country ~ '^[A-Z]{2}$');

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_email_format_check,
    ADD CONSTRAINT users_email_format_check CHECK (email ~* '^[^@\s]+@[^@\s]+\.[^@\s]+$');
ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_phone_format_check,
    ADD CONSTRAINT users_phone_format_check CHECK (phone ~ '^\+?[0-9 .()-]{6,20}$');
ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_names_not_blank_check,
    ADD CONSTRAINT users_names_not_blank_check
        CHECK (length(btrim(first_name)) > 0 AND length(btrim(last_name)) > 0);

-- Case-insensitive uniqueness replaces the plain UNIQUE (email) of 001.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON users (lower(email));

ALTER TABLE bilans
    DROP CONSTRAINT IF EXISTS bilans_duration_hours_check,
    ADD CONSTRAINT bilans_duration_hours_check
        CHECK (duration_hours > 0 AND duration_hours <= 24);
ALTER TABLE bilans
    DROP CONSTRAINT IF EXISTS bilans_dates_check,
    ADD CONSTRAINT bilans_dates_check
        CHECK (expected_end_date >= start_date AND actual_end_date >= start_date);
ALTER TABLE bilans
    DROP CONSTRAINT IF EXISTS bilans_consultant_not_beneficiary_check,
    ADD CONSTRAINT bilans_consultant_not_beneficiary_check
        CHECK (consultant_id <> beneficiary_id);
ALTER TABLE bilans
    DROP CONSTRAINT IF EXISTS bilans_completed_end_date_check,
    ADD CONSTRAINT bilans_completed_end_date_check
        CHECK (status <> 'completed' OR actual_end_date IS NOT NULL);

------------------------------------------------------------------------------
-- 3. Functions and triggers
------------------------------------------------------------------------------

-- E-mails are stored trimmed and lower-cased, names trimmed. Migration 003
-- extends users_normalize() and its trigger to users.cv_url; both are created
-- here only when absent, so re-running 002 after 003 keeps 003's version.
DO $do$
BEGIN
    IF to_regprocedure('users_normalize()') IS NULL THEN
        CREATE FUNCTION users_normalize()
        RETURNS trigger
        LANGUAGE plpgsql
        AS $fn$
BEGIN
    NEW.email := lower(btrim(NEW.email));
    NEW.first_name := btrim(NEW.first_name);
    NEW.last_name := btrim(NEW.last_name);
    RETURN NEW;
END;
$fn$;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'users'::regclass AND tgname = 'trg_users_normalize') THEN
        CREATE TRIGGER trg_users_normalize
            BEFORE INSERT OR UPDATE OF email, first_name, last_name ON users
            FOR EACH ROW EXECUTE FUNCTION users_normalize();
    END IF;
END;
$do$;

-- In a request context only an admin may change a role or an organization.
CREATE OR REPLACE FUNCTION users_protect_privileged_columns()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF app_current_user_id() IS NOT NULL
       AND (NEW.role IS DISTINCT FROM OLD.role
            OR NEW.organization_id IS DISTINCT FROM OLD.organization_id)
       AND app_current_role() IS DISTINCT FROM 'admin' THEN
        RAISE EXCEPTION 'only an organization admin can change the role or organization of a user'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_users_protect_privileged_columns ON users;
CREATE TRIGGER trg_users_protect_privileged_columns BEFORE UPDATE OF role, organization_id ON users
    FOR EACH ROW EXECUTE FUNCTION users_protect_privileged_columns();

-- Bilan workflow: draft -> preliminary -> investigation -> conclusion -> completed,
-- cancellation from any open phase, conclusion may go back to investigation,
-- a cancelled bilan may be reopened as draft. Dates are stamped on the way.
CREATE OR REPLACE FUNCTION bilans_validate_status()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT (
           (OLD.status = 'draft'         AND NEW.status IN ('preliminary', 'cancelled'))
        OR (OLD.status = 'preliminary'   AND NEW.status IN ('investigation', 'cancelled'))
        OR (OLD.status = 'investigation' AND NEW.status IN ('conclusion', 'cancelled'))
        OR (OLD.status = 'conclusion'    AND NEW.status IN ('completed', 'investigation', 'cancelled'))
        OR (OLD.status = 'cancelled'     AND NEW.status = 'draft')
    ) THEN
        RAISE EXCEPTION 'invalid bilan status transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'preliminary' THEN
        NEW.start_date := coalesce(NEW.start_date, current_date);
    ELSIF NEW.status = 'completed' THEN
        NEW.actual_end_date := coalesce(NEW.actual_end_date, current_date);
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_bilans_validate_status ON bilans;
CREATE TRIGGER trg_bilans_validate_status BEFORE UPDATE OF status ON bilans
    FOR EACH ROW EXECUTE FUNCTION bilans_validate_status();

-- Generic audit trigger: one audit_logs row per INSERT/UPDATE/DELETE. Secrets are
-- stripped, no-op updates are skipped, the actor comes from app.current_user_id,
-- the client from app.client_ip / app.user_agent. SECURITY DEFINER so that the
-- application role needs no privilege on audit_logs.
CREATE OR REPLACE FUNCTION audit_row_change()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_secrets text[] := ARRAY['password_hash', 'email_verification_token', 'cv_text'];
    v_old     jsonb;
    v_new     jsonb;
    v_row     jsonb;
    v_actor   uuid := app_current_user_id();
    v_org     uuid;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old := to_jsonb(OLD) - v_secrets;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_new := to_jsonb(NEW) - v_secrets;
    END IF;
    IF TG_OP = 'UPDATE' AND (v_old - 'updated_at') = (v_new - 'updated_at') THEN
        RETURN NULL;
    END IF;
    v_row := coalesce(v_new, v_old);
    IF TG_TABLE_NAME = 'organizations' THEN
        v_org := (v_row ->> 'id')::uuid;
    ELSE
        v_org := (v_row ->> 'organization_id')::uuid;
    END IF;
    -- The actor or the organization may be the row being deleted.
    IF v_actor IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users WHERE id = v_actor) THEN
        v_actor := NULL;
    END IF;
    IF v_org IS NOT NULL AND NOT EXISTS (SELECT 1 FROM organizations WHERE id = v_org) THEN
        v_org := NULL;
    END IF;
    INSERT INTO audit_logs (user_id, organization_id, action, entity_type, entity_id,
                            old_values, new_values, ip_address, user_agent)
    VALUES (v_actor, v_org, TG_OP, TG_TABLE_NAME, v_row ->> 'id', v_old, v_new,
            nullif(current_setting('app.client_ip', true), '')::inet,
            nullif(current_setting('app.user_agent', true), ''));
    RETURN NULL;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_organizations_audit ON organizations;
CREATE TRIGGER trg_organizations_audit AFTER INSERT OR UPDATE OR DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();

DROP TRIGGER IF EXISTS trg_users_audit ON users;
CREATE TRIGGER trg_users_audit AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();

DROP TRIGGER IF EXISTS trg_bilans_audit ON bilans;
CREATE TRIGGER trg_bilans_audit AFTER INSERT OR UPDATE OR DELETE ON bilans
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();

DROP TRIGGER IF EXISTS trg_documents_audit ON documents;
CREATE TRIGGER trg_documents_audit AFTER INSERT OR UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();

-- Append-only logs: rows may be deleted (retention) or anonymised (user_id /
-- organization_id set to NULL by ON DELETE SET NULL), never otherwise edited.
-- Shared by audit_logs, document_access_log (012) and qualiopi_audit_log (013).
CREATE OR REPLACE FUNCTION protect_append_only_log()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_keys text[] := ARRAY['user_id', 'organization_id'];
    v_old  jsonb := to_jsonb(OLD);
    v_new  jsonb := to_jsonb(NEW);
    v_key  text;
BEGIN
    IF (v_new - v_keys) IS DISTINCT FROM (v_old - v_keys) THEN
        RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH v_key IN ARRAY v_keys LOOP
        IF v_new ->> v_key IS NOT NULL AND (v_new -> v_key) IS DISTINCT FROM (v_old -> v_key) THEN
            RAISE EXCEPTION '% rows can only be anonymised (% set to NULL)', TG_TABLE_NAME, v_key
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_audit_logs_append_only ON audit_logs;
CREATE TRIGGER trg_audit_logs_append_only BEFORE UPDATE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION protect_append_only_log();

------------------------------------------------------------------------------
-- 4. Indexes
------------------------------------------------------------------------------

CREATE UNIQUE INDEX IF NOT EXISTS organizations_siret_key ON organizations (siret);
CREATE INDEX IF NOT EXISTS idx_organizations_is_active ON organizations (is_active);

CREATE INDEX IF NOT EXISTS idx_users_organization_id ON users (organization_id);
CREATE INDEX IF NOT EXISTS idx_users_role ON users (role);
CREATE INDEX IF NOT EXISTS idx_users_last_name ON users (lower(last_name), lower(first_name));
CREATE INDEX IF NOT EXISTS idx_users_active ON users (organization_id, role)
    WHERE deleted_at IS NULL AND is_active;

CREATE INDEX IF NOT EXISTS idx_bilans_beneficiary_id ON bilans (beneficiary_id);
CREATE INDEX IF NOT EXISTS idx_bilans_consultant_id ON bilans (consultant_id);
CREATE INDEX IF NOT EXISTS idx_bilans_organization_id ON bilans (organization_id);
CREATE INDEX IF NOT EXISTS idx_bilans_status ON bilans (status);
CREATE INDEX IF NOT EXISTS idx_bilans_org_status ON bilans (organization_id, status);
CREATE INDEX IF NOT EXISTS idx_bilans_start_date ON bilans (start_date);

CREATE INDEX IF NOT EXISTS idx_competencies_bilan_id ON competencies (bilan_id);
CREATE INDEX IF NOT EXISTS idx_competencies_category ON competencies (category);
CREATE INDEX IF NOT EXISTS idx_competencies_rome_code ON competencies (rome_code);
CREATE UNIQUE INDEX IF NOT EXISTS competencies_bilan_name_key ON competencies (bilan_id, lower(name));

CREATE INDEX IF NOT EXISTS idx_recommendations_bilan_id ON recommendations (bilan_id);
CREATE INDEX IF NOT EXISTS idx_recommendations_created_by ON recommendations (created_by);
CREATE INDEX IF NOT EXISTS idx_recommendations_type_status ON recommendations (type, status);

CREATE INDEX IF NOT EXISTS idx_documents_user_id ON documents (user_id);
CREATE INDEX IF NOT EXISTS idx_documents_organization_id ON documents (organization_id);
CREATE INDEX IF NOT EXISTS idx_documents_bilan_id ON documents (bilan_id);
CREATE INDEX IF NOT EXISTS idx_documents_uploaded_by ON documents (uploaded_by);
CREATE INDEX IF NOT EXISTS idx_documents_type ON documents (document_type);

CREATE INDEX IF NOT EXISTS idx_messages_sender_id ON messages (sender_id);
CREATE INDEX IF NOT EXISTS idx_messages_recipient_id ON messages (recipient_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_messages_bilan_id ON messages (bilan_id);
CREATE INDEX IF NOT EXISTS idx_messages_unread ON messages (recipient_id) WHERE read_at IS NULL;

CREATE INDEX IF NOT EXISTS idx_sessions_bilan_id ON sessions (bilan_id);
CREATE INDEX IF NOT EXISTS idx_sessions_consultant_id ON sessions (consultant_id);
CREATE INDEX IF NOT EXISTS idx_sessions_scheduled_at ON sessions (scheduled_at);
CREATE INDEX IF NOT EXISTS idx_sessions_status ON sessions (status);

CREATE INDEX IF NOT EXISTS idx_audit_logs_user_id ON audit_logs (user_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_organization_id ON audit_logs (organization_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_audit_logs_entity ON audit_logs (entity_type, entity_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_created_at ON audit_logs (created_at);

------------------------------------------------------------------------------
-- 5. Row level security
------------------------------------------------------------------------------

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE bilans ENABLE ROW LEVEL SECURITY;
ALTER TABLE competencies ENABLE ROW LEVEL SECURITY;
ALTER TABLE recommendations ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;

-- users: read per app_can_read; write self, or admin within the organization.
DROP POLICY IF EXISTS users_select ON users;
CREATE POLICY users_select ON users FOR SELECT
    USING (app_can_read(id, organization_id));
DROP POLICY IF EXISTS users_write ON users;
CREATE POLICY users_write ON users FOR ALL
    USING (id = app_current_user_id()
           OR (app_current_role() = 'admin' AND organization_id = app_current_organization_id()))
    WITH CHECK (id = app_current_user_id()
           OR (app_current_role() = 'admin' AND organization_id = app_current_organization_id()));

-- bilans: the assigned consultant, plus the generic rules; beneficiaries read only.
DROP POLICY IF EXISTS bilans_select ON bilans;
CREATE POLICY bilans_select ON bilans FOR SELECT
    USING (consultant_id = app_current_user_id()
           OR app_can_read(beneficiary_id, organization_id));
DROP POLICY IF EXISTS bilans_write ON bilans;
CREATE POLICY bilans_write ON bilans FOR ALL
    USING (app_current_role() IN ('consultant', 'admin')
           AND (consultant_id = app_current_user_id()
                OR app_can_write(beneficiary_id, organization_id)))
    WITH CHECK (app_current_role() IN ('consultant', 'admin')
           AND (consultant_id = app_current_user_id()
                OR app_can_write(beneficiary_id, organization_id)));

-- Children of a bilan follow their bilan.
DROP POLICY IF EXISTS competencies_select ON competencies;
CREATE POLICY competencies_select ON competencies FOR SELECT
    USING (app_bilan_visible(bilan_id));
DROP POLICY IF EXISTS competencies_write ON competencies;
CREATE POLICY competencies_write ON competencies FOR ALL
    USING (app_bilan_writable(bilan_id))
    WITH CHECK (app_bilan_writable(bilan_id));

DROP POLICY IF EXISTS recommendations_select ON recommendations;
CREATE POLICY recommendations_select ON recommendations FOR SELECT
    USING (app_bilan_visible(bilan_id));
DROP POLICY IF EXISTS recommendations_write ON recommendations;
CREATE POLICY recommendations_write ON recommendations FOR ALL
    USING (app_bilan_writable(bilan_id))
    WITH CHECK (app_bilan_writable(bilan_id));

DROP POLICY IF EXISTS sessions_select ON sessions;
CREATE POLICY sessions_select ON sessions FOR SELECT
    USING (app_bilan_visible(bilan_id));
DROP POLICY IF EXISTS sessions_write ON sessions;
CREATE POLICY sessions_write ON sessions FOR ALL
    USING (app_bilan_writable(bilan_id))
    WITH CHECK (app_bilan_writable(bilan_id));

-- documents: owned by the beneficiary they concern.
DROP POLICY IF EXISTS documents_select ON documents;
CREATE POLICY documents_select ON documents FOR SELECT
    USING (app_can_read(user_id, organization_id));
DROP POLICY IF EXISTS documents_write ON documents;
CREATE POLICY documents_write ON documents FOR ALL
    USING (app_can_write(user_id, organization_id))
    WITH CHECK (app_can_write(user_id, organization_id));

-- messages: visible when either participant is visible; only the sender writes
-- or deletes, the recipient may update (read receipt).
DROP POLICY IF EXISTS messages_select ON messages;
CREATE POLICY messages_select ON messages FOR SELECT
    USING (app_can_read(sender_id) OR app_can_read(recipient_id));
DROP POLICY IF EXISTS messages_insert ON messages;
CREATE POLICY messages_insert ON messages FOR INSERT
    WITH CHECK (sender_id = app_current_user_id());
DROP POLICY IF EXISTS messages_update ON messages;
CREATE POLICY messages_update ON messages FOR UPDATE
    USING (sender_id = app_current_user_id() OR recipient_id = app_current_user_id())
    WITH CHECK (sender_id = app_current_user_id() OR recipient_id = app_current_user_id());
DROP POLICY IF EXISTS messages_delete ON messages;
CREATE POLICY messages_delete ON messages FOR DELETE
    USING (sender_id = app_current_user_id());
