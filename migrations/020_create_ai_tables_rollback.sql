-- Rollback of migration 020: drops refresh_consultant_analytics(), the seven
-- tables (dependents first; their policies, indexes and triggers go with them)
-- and the cv_analyses trigger function.

DROP FUNCTION IF EXISTS refresh_consultant_analytics(uuid, date, date);

DROP TABLE IF EXISTS consultant_analytics;
DROP TABLE IF EXISTS action_plans;
DROP TABLE IF EXISTS personality_analyses;
DROP TABLE IF EXISTS job_recommendations;
DROP TABLE IF EXISTS cv_analyses;
DROP TABLE IF EXISTS test_results;
DROP TABLE IF EXISTS files;

DROP FUNCTION IF EXISTS cv_analyses_track_status();
