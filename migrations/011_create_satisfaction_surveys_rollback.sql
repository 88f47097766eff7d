-- Rollback of migration 011: removes the survey link of qualiopi_evidence
-- (index, checks, column; the evidence rows stay), then drops calculate_nps(),
-- survey_responses, satisfaction_surveys (indexes and triggers go with them)
-- and the status trigger function.

DROP INDEX IF EXISTS idx_qualiopi_evidence_survey_id;
ALTER TABLE qualiopi_evidence DROP CONSTRAINT IF EXISTS qualiopi_evidence_survey_type_check;
ALTER TABLE qualiopi_evidence DROP CONSTRAINT IF EXISTS qualiopi_evidence_survey_id_fkey;
ALTER TABLE qualiopi_evidence DROP COLUMN IF EXISTS survey_id;

DROP FUNCTION IF EXISTS calculate_nps(uuid, timestamptz, timestamptz);
DROP TABLE IF EXISTS survey_responses;
DROP TABLE IF EXISTS satisfaction_surveys;
DROP FUNCTION IF EXISTS satisfaction_surveys_track_status();
