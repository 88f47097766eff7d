-- Rollback of migration 002: removes row level security, the indexes, triggers,
-- functions and constraints added by 002 and restores the plain UNIQUE (email)
-- constraint of 001. Data is not touched (e-mails normalised by the trigger
-- while 002 was applied stay lower-case).

-- 5. Row level security
DROP POLICY IF EXISTS messages_delete ON messages;
DROP POLICY IF EXISTS messages_update ON messages;
DROP POLICY IF EXISTS messages_insert ON messages;
DROP POLICY IF EXISTS messages_select ON messages;
DROP POLICY IF EXISTS documents_write ON documents;
DROP POLICY IF EXISTS documents_select ON documents;
DROP POLICY IF EXISTS sessions_write ON sessions;
DROP POLICY IF EXISTS sessions_select ON sessions;
DROP POLICY IF EXISTS recommendations_write ON recommendations;
DROP POLICY IF EXISTS recommendations_select ON recommendations;
DROP POLICY IF EXISTS competencies_write ON competencies;
DROP POLICY IF EXISTS competencies_select ON competencies;
DROP POLICY IF EXISTS bilans_write ON bilans;
DROP POLICY IF EXISTS bilans_select ON bilans;
DROP POLICY IF EXISTS users_write ON users;
DROP POLICY IF EXISTS users_select ON users;

ALTER TABLE sessions DISABLE ROW LEVEL SECURITY;
ALTER TABLE messages DISABLE ROW LEVEL SECURITY;
ALTER TABLE documents DISABLE ROW LEVEL SECURITY;
ALTER TABLE recommendations DISABLE ROW LEVEL SECURITY;
ALTER TABLE competencies DISABLE ROW LEVEL SECURITY;
ALTER TABLE bilans DISABLE ROW LEVEL SECURITY;
ALTER TABLE users DISABLE ROW LEVEL SECURITY;

-- 4. Indexes
DROP INDEX IF EXISTS idx_audit_logs_created_at;
DROP INDEX IF EXISTS idx_audit_logs_entity;
DROP INDEX IF EXISTS idx_audit_logs_organization_id;
DROP INDEX IF EXISTS idx_audit_logs_user_id;
DROP INDEX IF EXISTS idx_sessions_status;
DROP INDEX IF EXISTS idx_sessions_scheduled_at;
DROP INDEX IF EXISTS idx_sessions_consultant_id;
DROP INDEX IF EXISTS idx_sessions_bilan_id;
DROP INDEX IF EXISTS idx_messages_unread;
DROP INDEX IF EXISTS idx_messages_bilan_id;
DROP INDEX IF EXISTS idx_messages_recipient_id;
DROP INDEX IF EXISTS idx_messages_sender_id;
DROP INDEX IF EXISTS idx_documents_type;
DROP INDEX IF EXISTS idx_documents_uploaded_by;
DROP INDEX IF EXISTS idx_documents_bilan_id;
DROP INDEX IF EXISTS idx_documents_organization_id;
DROP INDEX IF EXISTS idx_documents_user_id;
DROP INDEX IF EXISTS idx_recommendations_type_status;
DROP INDEX IF EXISTS idx_recommendations_created_by;
DROP INDEX IF EXISTS idx_recommendations_bilan_id;
DROP INDEX IF EXISTS competencies_bilan_name_key;
DROP INDEX IF EXISTS idx_competencies_rome_code;
DROP INDEX IF EXISTS idx_competencies_category;
DROP INDEX IF EXISTS idx_competencies_bilan_id;
DROP INDEX IF EXISTS idx_bilans_start_date;
DROP INDEX IF EXISTS idx_bilans_org_status;
DROP INDEX IF EXISTS idx_bilans_status;
DROP INDEX IF EXISTS idx_bilans_organization_id;
DROP INDEX IF EXISTS idx_bilans_consultant_id;
DROP INDEX IF EXISTS idx_bilans_beneficiary_id;
DROP INDEX IF EXISTS idx_users_active;
DROP INDEX IF EXISTS idx_users_last_name;
DROP INDEX IF EXISTS idx_users_role;
DROP INDEX IF EXISTS idx_users_organization_id;
DROP INDEX IF EXISTS idx_organizations_is_active;
DROP INDEX IF EXISTS organizations_siret_key;

-- 3. Triggers and their functions
DROP TRIGGER IF EXISTS trg_audit_logs_append_only ON audit_logs;
DROP FUNCTION IF EXISTS protect_append_only_log();

DROP TRIGGER IF EXISTS trg_documents_audit ON documents;
DROP TRIGGER IF EXISTS trg_bilans_audit ON bilans;
DROP TRIGGER IF EXISTS trg_users_audit ON users;
DROP TRIGGER IF EXISTS trg_organizations_audit ON organizations;
DROP FUNCTION IF EXISTS audit_row_change();

DROP TRIGGER IF EXISTS trg_bilans_validate_status ON bilans;
DROP FUNCTION IF EXISTS bilans_validate_status();

DROP TRIGGER IF EXISTS trg_users_protect_privileged_columns ON users;
DROP FUNCTION IF EXISTS users_protect_privileged_columns();

DROP TRIGGER IF EXISTS trg_users_normalize ON users;
DROP FUNCTION IF EXISTS users_normalize();

-- 2. Constraints
ALTER TABLE bilans DROP CONSTRAINT IF EXISTS bilans_completed_end_date_check;
ALTER TABLE bilans DROP CONSTRAINT IF EXISTS bilans_consultant_not_beneficiary_check;
ALTER TABLE bilans DROP CONSTRAINT IF EXISTS bilans_dates_check;
ALTER TABLE bilans DROP CONSTRAINT IF EXISTS bilans_duration_hours_check;

DROP INDEX IF EXISTS users_email_lower_key;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'users'::regclass AND conname = 'users_email_key') THEN
        ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
    END IF;
END;
$do$;

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_names_not_blank_check;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_phone_format_check;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_format_check;

ALTER TABLE organizations DROP CONSTRAINT IF EXISTS organizations_country_format_check;
ALTER TABLE organizations DROP CONSTRAINT IF EXISTS organizations_email_format_check;
ALTER TABLE organizations DROP CONSTRAINT IF EXISTS organizations_siret_format_check;

-- 1. Request-context helpers
DROP FUNCTION IF EXISTS app_bilan_writable(uuid);
DROP FUNCTION IF EXISTS app_bilan_visible(uuid);
DROP FUNCTION IF EXISTS app_can_write(uuid, uuid);
DROP FUNCTION IF EXISTS app_can_read(uuid, uuid);
DROP FUNCTION IF EXISTS app_is_consultant_of(uuid);
DROP FUNCTION IF EXISTS app_user_organization(uuid);
DROP FUNCTION IF EXISTS app_current_organization_id();
DROP FUNCTION IF EXISTS app_current_role();
DROP FUNCTION IF EXISTS app_current_user_id();
