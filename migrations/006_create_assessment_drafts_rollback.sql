-- Rollback of migration 006: removes the draft link of assessment_competencies
-- (index, foreign key, column), then drops assessment_drafts (indexes and
-- triggers go with it) and the trigger function.

DROP INDEX IF EXISTS idx_assessment_competencies_draft_id;
ALTER TABLE assessment_competencies DROP CONSTRAINT IF EXISTS assessment_competencies_draft_id_fkey;
ALTER TABLE assessment_competencies DROP COLUMN IF EXISTS draft_id;

DROP TABLE IF EXISTS assessment_drafts;
DROP FUNCTION IF EXISTS assessment_drafts_touch();
