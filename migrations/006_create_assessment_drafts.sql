-- Migration 006: assessment_drafts
--
-- Auto-saved, not yet submitted answers of the multi-step assessment wizard, one
-- draft per (assessment, user), so a beneficiary can resume where they stopped.
-- Like 005, assessment_id first references bilans(id); 019 moves it to
-- assessments(id). A trigger counts auto-saves and stamps last_saved_at.
--
-- The wizard's competency step writes the competencies the beneficiary picks
-- into assessment_competencies (005); each of them now keeps a link to the
-- draft it was picked in (assessment_competencies.draft_id), so the picks of
-- a draft the beneficiary abandons can be discarded with it. The composite
-- foreign key (draft_id, assessment_id) guarantees the draft belongs to the
-- same assessment; when the draft is deleted (after submission) only draft_id
-- is cleared (ON DELETE SET NULL (draft_id), PostgreSQL 15+) and the
-- competencies stay.

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
    CONSTRAINT assessment_drafts_assessment_user_key UNIQUE (assessment_id, user_id),
    -- target of assessment_competencies_draft_id_fkey (same assessment)
    CONSTRAINT assessment_drafts_id_assessment_key UNIQUE (id, assessment_id)
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

-- Competencies picked during a draft keep a link to it.
ALTER TABLE assessment_competencies ADD COLUMN IF NOT EXISTS draft_id uuid;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'assessment_competencies'::regclass
                     AND conname = 'assessment_competencies_draft_id_fkey') THEN
        ALTER TABLE assessment_competencies ADD CONSTRAINT assessment_competencies_draft_id_fkey
            FOREIGN KEY (draft_id, assessment_id) REFERENCES assessment_drafts (id, assessment_id)
            ON DELETE SET NULL (draft_id);
    END IF;
END;
$do$;
CREATE INDEX IF NOT EXISTS idx_assessment_competencies_draft_id
    ON assessment_competencies (draft_id) WHERE draft_id IS NOT NULL;

COMMENT ON COLUMN assessment_competencies.draft_id IS
    'Draft (assessment_drafts) the competency was picked in; NULL once the draft is gone.';
