-- Rollback of migration 013: removes the audit triggers from the Qualiopi
-- tables, qualiopi_log_change() and the qualiopi_audit_log table.

DROP TRIGGER IF EXISTS trg_document_archive_audit ON document_archive;
DROP TRIGGER IF EXISTS trg_satisfaction_surveys_audit ON satisfaction_surveys;
DROP TRIGGER IF EXISTS trg_qualiopi_evidence_audit ON qualiopi_evidence;
DROP TRIGGER IF EXISTS trg_org_qualiopi_status_audit ON organization_qualiopi_status;
DROP FUNCTION IF EXISTS qualiopi_log_change();
DROP TABLE IF EXISTS qualiopi_audit_log;
