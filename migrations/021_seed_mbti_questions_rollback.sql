-- Rollback of migration 021: removes the scoring trigger from test_results,
-- test_results_score() and mbti_score(), then drops mbti_questions with its 48
-- seeded questions (indexes and trigger go with it). Scores already stored in
-- test_results are kept.

DROP TRIGGER IF EXISTS trg_test_results_score ON test_results;
DROP FUNCTION IF EXISTS test_results_score();
DROP FUNCTION IF EXISTS mbti_score(jsonb);
DROP TABLE IF EXISTS mbti_questions;
