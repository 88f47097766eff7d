-- Migration 006: assessment_drafts
--
-- Auto-saved, not yet submitted answers of the multi-step assessment wizard, one
-- draft per (assessment, user), so a beneficiary can resume where they stopped.
-- Like 005, assessment_id first references bilans(id); 019 moves it to
-- assessments(id). A trigger counts auto-saves and stamps last_saved_at.

CREATE TABLE IF NOT EXISTS assessment_drafts (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    assessment_id   uuid        NOT NULL REFERENCES bilans (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_step    smallint    NOT NULL DEFAULT 0 CHECK (current_step BETWEEN 0 AND 50),
    draft_data      jsonb       NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(draft_data) = 'object'),
    auto_save_count integer     NOT NULL DEFAULT 0 CHECK (auto_save_count >= 0),
    last_saved_at   timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assessment_drafts_assessment_user_key UNIQUE (assessment_id, user_id)
);

CREATE INDEX IF NOT EXISTS idx_assessment_drafts_user_id ON assessment_drafts (user_id);
CREATE INDEX IF NOT EXISTS idx_assessment_drafts_last_saved_at ON assessment_drafts (last_saved_at);

CREATE OR REPLACE FUNCTION assessment_drafts_touch()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.draft_data IS DISTINCT FROM OLD.draft_data
       OR NEW.current_step IS DISTINCT FROM OLD.current_step THEN
        NEW.auto_save_count := OLD.auto_save_count + 1;
        NEW.last_saved_at := now();
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_assessment_drafts_touch ON assessment_drafts;
CREATE TRIGGER trg_assessment_drafts_touch BEFORE UPDATE ON assessment_drafts
    FOR EACH ROW EXECUTE FUNCTION assessment_drafts_touch();

DROP TRIGGER IF EXISTS trg_assessment_drafts_updated_at ON assessment_drafts;
CREATE TRIGGER trg_assessment_drafts_updated_at BEFORE UPDATE ON assessment_drafts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
