-- Rollback of migration 009: drops its functions and organization_qualiopi_status
-- (indexes and triggers go with the table).

DROP FUNCTION IF EXISTS qualiopi_compliance_rate(uuid);
DROP FUNCTION IF EXISTS initialize_qualiopi_status(uuid);
DROP TABLE IF EXISTS organization_qualiopi_status;
DROP FUNCTION IF EXISTS organization_qualiopi_status_review();
