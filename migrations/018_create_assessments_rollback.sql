-- Rollback of migration 018: drops the assessments policies, the three tables
-- (children first; indexes and triggers go with them) and the status trigger
-- function.

DROP POLICY IF EXISTS assessments_owner_write ON assessments;
DROP POLICY IF EXISTS assessments_owner_select ON assessments;
DROP TABLE IF EXISTS assessment_answers;
DROP TABLE IF EXISTS assessment_questions;
DROP TABLE IF EXISTS assessments;
DROP FUNCTION IF EXISTS assessments_validate_status();
