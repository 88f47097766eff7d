-- Migration 013: Qualiopi audit log
--
-- Auditors expect to see who changed what in the compliance file and when.
-- qualiopi_audit_log is an append-only log (protect_append_only_log() from
-- 002) filled by the trigger function qualiopi_log_change() on the Qualiopi
-- tables of 009-012: organization_qualiopi_status, qualiopi_evidence,
-- satisfaction_surveys and document_archive. Only changed fields are listed,
-- no-op updates are skipped and the survey access token is never logged.
-- When an organization is deleted its compliance rows are deleted with it and
-- their log rows go too (nothing is logged for that cascade).
-- Needs the tables of 009-012 and the helpers of 002.
--
-- depends: 002, 012

CREATE TABLE IF NOT EXISTS qualiopi_audit_log (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          uuid        REFERENCES users (id) ON DELETE SET NULL,
    entity_type      varchar(50) NOT NULL,
    entity_id        uuid        NOT NULL,
    action           varchar(10) NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    indicator_number smallint    CHECK (indicator_number BETWEEN 1 AND 32),
    changed_fields   text[],
    old_values       jsonb,
    new_values       jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE qualiopi_audit_log IS
    'Append-only history of changes to the Qualiopi compliance file of each organization.';

CREATE INDEX IF NOT EXISTS idx_qualiopi_audit_log_organization
    ON qualiopi_audit_log (organization_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_qualiopi_audit_log_entity
    ON qualiopi_audit_log (entity_type, entity_id);
CREATE INDEX IF NOT EXISTS idx_qualiopi_audit_log_user_id ON qualiopi_audit_log (user_id);
CREATE INDEX IF NOT EXISTS idx_qualiopi_audit_log_indicator
    ON qualiopi_audit_log (organization_id, indicator_number);

DROP TRIGGER IF EXISTS trg_qualiopi_audit_log_append_only ON qualiopi_audit_log;
CREATE TRIGGER trg_qualiopi_audit_log_append_only BEFORE UPDATE ON qualiopi_audit_log
    FOR EACH ROW EXECUTE FUNCTION protect_append_only_log();

CREATE OR REPLACE FUNCTION qualiopi_log_change()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_secrets   text[] := ARRAY['access_token'];
    v_old       jsonb;
    v_new       jsonb;
    v_row       jsonb;
    v_org       uuid;
    v_actor     uuid := app_current_user_id();
    v_changed   text[];
    v_indicator smallint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old := to_jsonb(OLD) - v_secrets;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_new := to_jsonb(NEW) - v_secrets;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(n.key ORDER BY n.key) INTO v_changed
        FROM jsonb_each(v_new) n
        WHERE n.key <> 'updated_at' AND n.value IS DISTINCT FROM v_old -> n.key;
        IF v_changed IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;
    v_row := coalesce(v_new, v_old);
    v_org := (v_row ->> 'organization_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM organizations WHERE id = v_org) THEN
        RETURN NULL;  -- cascade from a deleted organization
    END IF;
    IF v_actor IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users WHERE id = v_actor) THEN
        v_actor := NULL;
    END IF;
    IF v_row ? 'indicator_id' THEN
        SELECT i.indicator_number INTO v_indicator
        FROM qualiopi_indicators i WHERE i.id = (v_row ->> 'indicator_id')::uuid;
    END IF;
    INSERT INTO qualiopi_audit_log (organization_id, user_id, entity_type, entity_id, action,
                                    indicator_number, changed_fields, old_values, new_values)
    VALUES (v_org, v_actor, TG_TABLE_NAME, (v_row ->> 'id')::uuid, TG_OP,
            v_indicator, v_changed, v_old, v_new);
    RETURN NULL;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_org_qualiopi_status_audit ON organization_qualiopi_status;
CREATE TRIGGER trg_org_qualiopi_status_audit
    AFTER INSERT OR UPDATE OR DELETE ON organization_qualiopi_status
    FOR EACH ROW EXECUTE FUNCTION qualiopi_log_change();

DROP TRIGGER IF EXISTS trg_qualiopi_evidence_audit ON qualiopi_evidence;
CREATE TRIGGER trg_qualiopi_evidence_audit
    AFTER INSERT OR UPDATE OR DELETE ON qualiopi_evidence
    FOR EACH ROW EXECUTE FUNCTION qualiopi_log_change();

DROP TRIGGER IF EXISTS trg_satisfaction_surveys_audit ON satisfaction_surveys;
CREATE TRIGGER trg_satisfaction_surveys_audit
    AFTER INSERT OR UPDATE OR DELETE ON satisfaction_surveys
    FOR EACH ROW EXECUTE FUNCTION qualiopi_log_change();

DROP TRIGGER IF EXISTS trg_document_archive_audit ON document_archive;
CREATE TRIGGER trg_document_archive_audit
    AFTER INSERT OR UPDATE OR DELETE ON document_archive
    FOR EACH ROW EXECUTE FUNCTION qualiopi_log_change();
