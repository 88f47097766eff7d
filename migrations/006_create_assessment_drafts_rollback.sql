-- Rollback of migration 006: drops assessment_drafts (indexes and triggers go
-- with it), then the trigger function.

DROP TABLE IF EXISTS assessment_drafts;
DROP FUNCTION IF EXISTS assessment_drafts_touch();
