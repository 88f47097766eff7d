-- Migration 025: fix the cv_analyses status trigger of 020
--
-- The 020 version of cv_analyses_track_status() had two bugs:
--   * its trigger fired BEFORE UPDATE only, so an analysis inserted directly
--     as 'completed' (synchronous analyses) had no completed_at and was
--     rejected by cv_analyses_completed_check;
--   * it stamped completed_at on every update of a completed analysis (e.g.
--     when the beneficiary corrected the extracted skills), losing the real
--     completion time used by the analytics.
-- The fixed function stamps completed_at only when the status becomes
-- 'completed' (keeping an explicit value), clears it when the analysis goes
-- back to pending/processing (re-analysis) and clears error_message when it
-- leaves 'failed'; the trigger now fires on INSERT and on UPDATE OF status.
--
-- depends: 020, 024

CREATE OR REPLACE FUNCTION cv_analyses_track_status()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'completed' THEN
        NEW.completed_at := coalesce(NEW.completed_at, now());
    ELSIF NEW.status IN ('pending', 'processing') THEN
        NEW.completed_at := NULL;
    END IF;
    IF NEW.status <> 'failed' AND TG_OP = 'UPDATE' AND OLD.status = 'failed' THEN
        NEW.error_message := NULL;
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_cv_analyses_track_status ON cv_analyses;
CREATE TRIGGER trg_cv_analyses_track_status BEFORE INSERT OR UPDATE OF status ON cv_analyses
    FOR EACH ROW EXECUTE FUNCTION cv_analyses_track_status();
