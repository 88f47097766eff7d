-- Rollback of migration 010: drops qualiopi_evidence_expiring() and the
-- qualiopi_evidence table (with its indexes, trigger and foreign keys,
-- including the one to organization_qualiopi_status).

DROP FUNCTION IF EXISTS qualiopi_evidence_expiring(uuid, integer);
DROP TABLE IF EXISTS qualiopi_evidence;
