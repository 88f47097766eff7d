-- Rollback of migration 022: restores the 021 version of test_results_score()
-- (MBTI only), drops riasec_score(), then riasec_questions with its 48 seeded
-- questions (indexes and trigger go with it). Scores already stored in
-- test_results are kept.

CREATE OR REPLACE FUNCTION test_results_score()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.status = 'completed' AND NEW.test_type = 'mbti' THEN
        SELECT s.scores, s.result_code INTO NEW.scores, NEW.result_code
        FROM mbti_score(NEW.answers) AS s;
    END IF;
    RETURN NEW;
END;
$fn$;

DROP FUNCTION IF EXISTS riasec_score(jsonb);
DROP TABLE IF EXISTS riasec_questions;
