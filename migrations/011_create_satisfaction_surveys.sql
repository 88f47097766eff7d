-- Migration 011: satisfaction surveys (Qualiopi criterion 7, indicator 30)
--
-- satisfaction_surveys: one questionnaire sent to a beneficiary (or a funder)
-- at the end of a bilan ("à chaud") and six months later ("à froid"), reached
-- through a one-time access token. survey_responses: one row per question.
-- A trigger stamps sent_at/completed_at on status changes; calculate_nps()
-- computes the Net Promoter Score of an organization over a period.
--
-- Survey results are Qualiopi evidence (indicators 30-32, and 2 for the
-- published satisfaction rate): qualiopi_evidence (010) gets survey_id, the
-- survey an evidence row of type 'survey' stands for. The foreign key
-- (survey_id, organization_id) keeps the survey in the evidence's
-- organization, and a survey filed as evidence cannot be deleted on its own
-- (deleting the organization removes both). The rollback removes the column:
-- evidence rows stay, without their survey link.

CREATE TABLE IF NOT EXISTS satisfaction_surveys (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    bilan_id        uuid        REFERENCES bilans (id) ON DELETE SET NULL,
    beneficiary_id  uuid        REFERENCES users (id) ON DELETE SET NULL,
    survey_type     varchar(30) NOT NULL DEFAULT 'end_of_bilan'
        CHECK (survey_type IN ('end_of_bilan', 'follow_up_6_months', 'funder', 'consultant')),
    status          varchar(20) NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'sent', 'completed', 'expired')),
    access_token    varchar(64) UNIQUE CHECK (length(access_token) >= 32),
    sent_at         timestamptz,
    expires_at      timestamptz,
    completed_at    timestamptz,
    overall_score   smallint    CHECK (overall_score BETWEEN 0 AND 10),
    nps_score       smallint    CHECK (nps_score BETWEEN 0 AND 10),
    comments        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT satisfaction_surveys_completed_check
        CHECK (status <> 'completed' OR completed_at IS NOT NULL),
    CONSTRAINT satisfaction_surveys_expiry_check CHECK (expires_at > sent_at),
    -- target of the (survey_id, organization_id) foreign keys of qualiopi_evidence
    -- (below) and document_archive (012): a survey stays in its organization
    CONSTRAINT satisfaction_surveys_id_organization_key UNIQUE (id, organization_id)
);

COMMENT ON COLUMN satisfaction_surveys.nps_score IS
    '« Recommanderiez-vous ce bilan à un proche ? » 0-10 (promoters 9-10, detractors 0-6).';

CREATE TABLE IF NOT EXISTS survey_responses (
    id            uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    survey_id     uuid         NOT NULL REFERENCES satisfaction_surveys (id) ON DELETE CASCADE,
    question_code varchar(50)  NOT NULL,
    question_text text         NOT NULL,
    response_type varchar(20)  NOT NULL
        CHECK (response_type IN ('rating', 'nps', 'text', 'choice', 'boolean')),
    rating_value  smallint     CHECK (rating_value BETWEEN 0 AND 10),
    text_value    text,
    choice_value  varchar(255),
    boolean_value boolean,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT survey_responses_survey_question_key UNIQUE (survey_id, question_code),
    CONSTRAINT survey_responses_value_check CHECK (
           (response_type IN ('rating', 'nps') AND rating_value IS NOT NULL)
        OR (response_type = 'text' AND text_value IS NOT NULL)
        OR (response_type = 'choice' AND choice_value IS NOT NULL)
        OR (response_type = 'boolean' AND boolean_value IS NOT NULL))
);

CREATE INDEX IF NOT EXISTS idx_satisfaction_surveys_organization_id
    ON satisfaction_surveys (organization_id, survey_type, status);
CREATE INDEX IF NOT EXISTS idx_satisfaction_surveys_bilan_id ON satisfaction_surveys (bilan_id);
CREATE INDEX IF NOT EXISTS idx_satisfaction_surveys_beneficiary_id ON satisfaction_surveys (beneficiary_id);
CREATE INDEX IF NOT EXISTS idx_satisfaction_surveys_completed_at
    ON satisfaction_surveys (organization_id, completed_at) WHERE status = 'completed';
CREATE INDEX IF NOT EXISTS idx_satisfaction_surveys_pending_expiry
    ON satisfaction_surveys (expires_at) WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS idx_survey_responses_question_code ON survey_responses (question_code);

CREATE OR REPLACE FUNCTION satisfaction_surveys_track_status()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        IF NEW.status = 'sent' THEN
            NEW.sent_at := coalesce(NEW.sent_at, now());
            NEW.expires_at := coalesce(NEW.expires_at, NEW.sent_at + interval '30 days');
        ELSIF NEW.status = 'completed' THEN
            NEW.completed_at := coalesce(NEW.completed_at, now());
        END IF;
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_satisfaction_surveys_track_status ON satisfaction_surveys;
CREATE TRIGGER trg_satisfaction_surveys_track_status
    BEFORE INSERT OR UPDATE OF status ON satisfaction_surveys
    FOR EACH ROW EXECUTE FUNCTION satisfaction_surveys_track_status();

DROP TRIGGER IF EXISTS trg_satisfaction_surveys_updated_at ON satisfaction_surveys;
CREATE TRIGGER trg_satisfaction_surveys_updated_at BEFORE UPDATE ON satisfaction_surveys
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_survey_responses_updated_at ON survey_responses;
CREATE TRIGGER trg_survey_responses_updated_at BEFORE UPDATE ON survey_responses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION calculate_nps(p_organization_id uuid,
                                         p_from timestamptz DEFAULT NULL,
                                         p_to timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE sql STABLE
AS $fn$
    SELECT round(100.0 * (count(*) FILTER (WHERE s.nps_score >= 9)
                          - count(*) FILTER (WHERE s.nps_score <= 6))
                 / nullif(count(*), 0), 1)
    FROM satisfaction_surveys s
    WHERE s.organization_id = p_organization_id
      AND s.status = 'completed'
      AND s.nps_score IS NOT NULL
      AND (p_from IS NULL OR s.completed_at >= p_from)
      AND (p_to IS NULL OR s.completed_at < p_to);
$fn$;

COMMENT ON FUNCTION calculate_nps(uuid, timestamptz, timestamptz) IS
    'Net Promoter Score (-100..100) of the completed surveys of an organization, optional period [from, to).';

-- Survey results as Qualiopi evidence (010).
ALTER TABLE qualiopi_evidence ADD COLUMN IF NOT EXISTS survey_id uuid;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'qualiopi_evidence'::regclass
                     AND conname = 'qualiopi_evidence_survey_id_fkey') THEN
        ALTER TABLE qualiopi_evidence ADD CONSTRAINT qualiopi_evidence_survey_id_fkey
            FOREIGN KEY (survey_id, organization_id)
            REFERENCES satisfaction_surveys (id, organization_id);
    END IF;
END;
$do$;
ALTER TABLE qualiopi_evidence
    DROP CONSTRAINT IF EXISTS qualiopi_evidence_survey_type_check,
    ADD CONSTRAINT qualiopi_evidence_survey_type_check
        CHECK (survey_id IS NULL OR evidence_type = 'survey');
CREATE INDEX IF NOT EXISTS idx_qualiopi_evidence_survey_id
    ON qualiopi_evidence (survey_id) WHERE survey_id IS NOT NULL;

COMMENT ON COLUMN qualiopi_evidence.survey_id IS
    'Satisfaction survey (011) whose results this evidence presents (evidence_type survey).';
