-- Rollback of migration 011: drops calculate_nps(), survey_responses,
-- satisfaction_surveys (indexes and triggers go with them) and the status
-- trigger function.

DROP FUNCTION IF EXISTS calculate_nps(uuid, timestamptz, timestamptz);
DROP TABLE IF EXISTS survey_responses;
DROP TABLE IF EXISTS satisfaction_surveys;
DROP FUNCTION IF EXISTS satisfaction_surveys_track_status();
