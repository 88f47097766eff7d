-- Migration 018: assessments, assessment_questions, assessment_answers
--
-- Until now the bilan itself played the role of the "assessment". 018 makes
-- assessments first-class: a beneficiary may go through several assessments
-- (career, skills, personality, interests, values, comprehensive) within or
-- outside a bilan, each answered step by step against a question bank
-- (assessment_questions) with one answer per question (assessment_answers).
-- A trigger validates the status workflow
--   draft -> in_progress -> submitted -> under_review -> completed -> archived
-- (submitted/under_review may go back to in_progress) and stamps the dates.
--
-- Row level security is enabled on assessments with owner-only policies (the
-- beneficiary and the assigned consultant). Migration 024 replaces them with
-- the organization-aware rules of 002; the policies below are therefore only
-- (re)created while 024's policies are absent, so re-running 018 after 024
-- changes nothing.
-- In the guide's dependency graph 018 follows 004 (core + CV columns).
--
-- depends: 004

CREATE TABLE IF NOT EXISTS assessments (
    id                  uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    beneficiary_id      uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    consultant_id       uuid         REFERENCES users (id) ON DELETE SET NULL,
    organization_id     uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    bilan_id            uuid         REFERENCES bilans (id) ON DELETE SET NULL,
    assessment_type     varchar(30)  NOT NULL DEFAULT 'comprehensive'
        CHECK (assessment_type IN ('career', 'skills', 'personality', 'interests', 'values',
                                   'comprehensive')),
    title               varchar(255) NOT NULL,
    description         text,
    status              varchar(20)  NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'in_progress', 'submitted', 'under_review', 'completed',
                          'archived')),
    current_step        smallint     NOT NULL DEFAULT 0 CHECK (current_step BETWEEN 0 AND 50),
    progress_percentage smallint     NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    started_at          timestamptz,
    submitted_at        timestamptz,
    completed_at        timestamptz,
    metadata            jsonb        NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(metadata) = 'object'),
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT assessments_completed_check CHECK (status <> 'completed' OR completed_at IS NOT NULL),
    CONSTRAINT assessments_consultant_check CHECK (consultant_id <> beneficiary_id)
);

CREATE TABLE IF NOT EXISTS assessment_questions (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    question_code   varchar(50)  NOT NULL UNIQUE,
    assessment_type varchar(30)  NOT NULL
        CHECK (assessment_type IN ('career', 'skills', 'personality', 'interests', 'values',
                                   'comprehensive')),
    step_number     smallint     NOT NULL CHECK (step_number BETWEEN 1 AND 50),
    section         varchar(100),
    question_text   text         NOT NULL CHECK (length(btrim(question_text)) > 0),
    help_text       text,
    question_type   varchar(20)  NOT NULL DEFAULT 'text'
        CHECK (question_type IN ('text', 'textarea', 'single_choice', 'multiple_choice',
                                 'scale', 'rating', 'date')),
    options         jsonb        CHECK (options IS NULL OR jsonb_typeof(options) = 'array'),
    is_required     boolean      NOT NULL DEFAULT true,
    display_order   smallint     NOT NULL DEFAULT 0,
    is_active       boolean      NOT NULL DEFAULT true,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT assessment_questions_choice_options_check
        CHECK (question_type NOT IN ('single_choice', 'multiple_choice') OR options IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS assessment_answers (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    assessment_id uuid        NOT NULL REFERENCES assessments (id) ON DELETE CASCADE,
    question_id   uuid        NOT NULL REFERENCES assessment_questions (id) ON DELETE RESTRICT,
    step_number   smallint    CHECK (step_number BETWEEN 1 AND 50),
    answer_value  jsonb       NOT NULL,
    answered_at   timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assessment_answers_assessment_question_key UNIQUE (assessment_id, question_id)
);

CREATE INDEX IF NOT EXISTS idx_assessments_beneficiary_id ON assessments (beneficiary_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_assessments_consultant_id ON assessments (consultant_id);
CREATE INDEX IF NOT EXISTS idx_assessments_organization_id ON assessments (organization_id, status);
CREATE INDEX IF NOT EXISTS idx_assessments_bilan_id ON assessments (bilan_id);
CREATE INDEX IF NOT EXISTS idx_assessments_status ON assessments (status);
CREATE INDEX IF NOT EXISTS idx_assessments_type ON assessments (assessment_type);

CREATE INDEX IF NOT EXISTS idx_assessment_questions_type_step
    ON assessment_questions (assessment_type, step_number, display_order) WHERE is_active;

CREATE INDEX IF NOT EXISTS idx_assessment_answers_question_id ON assessment_answers (question_id);

CREATE OR REPLACE FUNCTION assessments_validate_status()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'draft'        AND NEW.status IN ('in_progress', 'archived'))
        OR (OLD.status = 'in_progress'  AND NEW.status IN ('submitted', 'archived'))
        OR (OLD.status = 'submitted'    AND NEW.status IN ('under_review', 'completed', 'in_progress'))
        OR (OLD.status = 'under_review' AND NEW.status IN ('completed', 'in_progress'))
        OR (OLD.status = 'completed'    AND NEW.status = 'archived')
    ) THEN
        RAISE EXCEPTION 'invalid assessment status transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> 'draft' THEN
        NEW.started_at := coalesce(NEW.started_at, now());
    END IF;
    IF NEW.status IN ('submitted', 'under_review', 'completed') THEN
        NEW.submitted_at := coalesce(NEW.submitted_at, now());
    END IF;
    IF NEW.status = 'completed' THEN
        NEW.completed_at := coalesce(NEW.completed_at, now());
        NEW.progress_percentage := 100;
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_assessments_validate_status ON assessments;
CREATE TRIGGER trg_assessments_validate_status BEFORE INSERT OR UPDATE OF status ON assessments
    FOR EACH ROW EXECUTE FUNCTION assessments_validate_status();

DROP TRIGGER IF EXISTS trg_assessments_updated_at ON assessments;
CREATE TRIGGER trg_assessments_updated_at BEFORE UPDATE ON assessments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_assessment_questions_updated_at ON assessment_questions;
CREATE TRIGGER trg_assessment_questions_updated_at BEFORE UPDATE ON assessment_questions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_assessment_answers_updated_at ON assessment_answers;
CREATE TRIGGER trg_assessment_answers_updated_at BEFORE UPDATE ON assessment_answers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

ALTER TABLE assessments ENABLE ROW LEVEL SECURITY;

DO $do$
BEGIN
    -- Superseded by 024 (assessments_select / assessments_write): keep them out
    -- once 024 is applied.
    IF NOT EXISTS (SELECT 1 FROM pg_policy
                   WHERE polrelid = 'assessments'::regclass
                     AND polname IN ('assessments_select', 'assessments_write')) THEN
        DROP POLICY IF EXISTS assessments_owner_select ON assessments;
        CREATE POLICY assessments_owner_select ON assessments FOR SELECT
            USING (beneficiary_id = app_current_user_id()
                   OR consultant_id = app_current_user_id());
        DROP POLICY IF EXISTS assessments_owner_write ON assessments;
        CREATE POLICY assessments_owner_write ON assessments FOR ALL
            USING (beneficiary_id = app_current_user_id()
                   OR consultant_id = app_current_user_id())
            WITH CHECK (beneficiary_id = app_current_user_id()
                   OR consultant_id = app_current_user_id());
    END IF;
END;
$do$;
