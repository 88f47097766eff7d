-- Migration 012: document archive and access log
--
-- Qualiopi auditors sample bilans and ask for their documents (convention,
-- émargements, synthèse...). document_archive keeps an immutable, hashed copy
-- of those documents with a retention date (5 years by default) and an optional
-- legal hold; document_access_log traces every access to an archived document
-- (append-only, protected by protect_append_only_log() from 002).
-- Functions: log_document_access() records an access for the current user,
-- purge_expired_document_archive() deletes archives past retention.
-- An archived survey (document_type 'survey': the exported answers of a
-- satisfaction survey of 011, proof for Qualiopi indicator 30) names its
-- survey in survey_id. The foreign key (survey_id, organization_id) keeps it in
-- the archive's organization; the archived copy outlives the survey row
-- (ON DELETE SET NULL (survey_id), PostgreSQL 15+).
-- Besides the Qualiopi chain (011) it needs 002 (app_current_user_id(),
-- protect_append_only_log()).
--
-- depends: 002, 011

CREATE TABLE IF NOT EXISTS document_archive (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid         NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    bilan_id        uuid         REFERENCES bilans (id) ON DELETE SET NULL,
    document_id     uuid         REFERENCES documents (id) ON DELETE SET NULL,
    beneficiary_id  uuid         REFERENCES users (id) ON DELETE SET NULL,
    survey_id       uuid,
    document_type   varchar(30)  NOT NULL
        CHECK (document_type IN ('convention', 'synthesis', 'attendance_sheet', 'cv',
                                 'certificate', 'action_plan', 'invoice', 'survey',
                                 'qualiopi_evidence', 'other')),
    title           varchar(255) NOT NULL,
    file_url        text         NOT NULL,
    file_sha256     char(64)     NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    file_size_bytes bigint       CHECK (file_size_bytes >= 0),
    mime_type       varchar(100),
    archived_by     uuid         REFERENCES users (id) ON DELETE SET NULL,
    archived_at     timestamptz  NOT NULL DEFAULT now(),
    retention_until date         NOT NULL DEFAULT (current_date + interval '5 years')::date,
    legal_hold      boolean      NOT NULL DEFAULT false,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT document_archive_survey_id_fkey FOREIGN KEY (survey_id, organization_id)
        REFERENCES satisfaction_surveys (id, organization_id) ON DELETE SET NULL (survey_id),
    CONSTRAINT document_archive_survey_type_check CHECK (survey_id IS NULL OR document_type = 'survey')
);

CREATE TABLE IF NOT EXISTS document_access_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    archive_id  uuid        NOT NULL REFERENCES document_archive (id) ON DELETE CASCADE,
    user_id     uuid        REFERENCES users (id) ON DELETE SET NULL,
    action      varchar(20) NOT NULL
        CHECK (action IN ('view', 'download', 'share', 'print', 'restore')),
    ip_address  inet,
    user_agent  text,
    accessed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_document_archive_organization_id
    ON document_archive (organization_id, archived_at DESC);
CREATE INDEX IF NOT EXISTS idx_document_archive_bilan_id ON document_archive (bilan_id);
CREATE INDEX IF NOT EXISTS idx_document_archive_document_id ON document_archive (document_id);
CREATE INDEX IF NOT EXISTS idx_document_archive_beneficiary_id ON document_archive (beneficiary_id);
CREATE INDEX IF NOT EXISTS idx_document_archive_survey_id
    ON document_archive (survey_id) WHERE survey_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_document_archive_archived_by ON document_archive (archived_by);
CREATE INDEX IF NOT EXISTS idx_document_archive_retention
    ON document_archive (retention_until) WHERE NOT legal_hold;
CREATE INDEX IF NOT EXISTS idx_document_archive_sha256 ON document_archive (file_sha256);

CREATE INDEX IF NOT EXISTS idx_document_access_log_archive_id
    ON document_access_log (archive_id, accessed_at DESC);
CREATE INDEX IF NOT EXISTS idx_document_access_log_user_id ON document_access_log (user_id);

DROP TRIGGER IF EXISTS trg_document_archive_updated_at ON document_archive;
CREATE TRIGGER trg_document_archive_updated_at BEFORE UPDATE ON document_archive
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_document_access_log_append_only ON document_access_log;
CREATE TRIGGER trg_document_access_log_append_only BEFORE UPDATE ON document_access_log
    FOR EACH ROW EXECUTE FUNCTION protect_append_only_log();

CREATE OR REPLACE FUNCTION log_document_access(p_archive_id uuid, p_action varchar)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    INSERT INTO document_access_log (archive_id, user_id, action, ip_address, user_agent)
    VALUES (p_archive_id, app_current_user_id(), p_action,
            nullif(current_setting('app.client_ip', true), '')::inet,
            nullif(current_setting('app.user_agent', true), ''))
    RETURNING id;
$fn$;

CREATE OR REPLACE FUNCTION purge_expired_document_archive()
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM document_archive
    WHERE retention_until < current_date AND NOT legal_hold;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$fn$;

COMMENT ON FUNCTION purge_expired_document_archive() IS
    'Deletes archived documents past their retention date (legal holds are kept); returns the count.';
