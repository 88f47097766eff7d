-- Rollback of migration 025: restores the 020 version of the cv_analyses
-- status trigger and function, bugs included (see 025), exactly as 020
-- created them.

CREATE OR REPLACE FUNCTION cv_analyses_track_status()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.status = 'completed' THEN
        NEW.completed_at := now();
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_cv_analyses_track_status ON cv_analyses;
CREATE TRIGGER trg_cv_analyses_track_status BEFORE UPDATE ON cv_analyses
    FOR EACH ROW EXECUTE FUNCTION cv_analyses_track_status();
