-- Migration 005: assessment_competencies
--
-- Competencies rated during the self-assessment questionnaire of a bilan: the
-- beneficiary rates their level and interest, the consultant may add their own
-- rating. When this table was introduced the "assessment" was the bilan
-- itself, so assessment_id references bilans(id); migration 019 moves the
-- foreign key to assessments(id) once that table exists (018).
-- It uses only core objects of 001 (bilans, set_updated_at()); nothing of 004
-- (users.cv_uploaded_at) concerns self-assessed competencies, so the guide's
-- order 004 -> 005 is declared rather than inferred.
--
-- depends: 004

CREATE TABLE IF NOT EXISTS assessment_competencies (
    id               uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    assessment_id    uuid         NOT NULL REFERENCES bilans (id) ON DELETE CASCADE,
    competency_name  varchar(255) NOT NULL CHECK (length(btrim(competency_name)) > 0),
    category         varchar(20)  NOT NULL DEFAULT 'technical'
        CHECK (category IN ('technical', 'transversal', 'behavioral', 'language',
                            'digital', 'management')),
    self_level       smallint     NOT NULL CHECK (self_level BETWEEN 1 AND 5),
    interest_level   smallint     CHECK (interest_level BETWEEN 1 AND 5),
    consultant_level smallint     CHECK (consultant_level BETWEEN 1 AND 5),
    context          text,
    notes            text,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT assessment_competencies_assessment_name_key UNIQUE (assessment_id, competency_name)
);

COMMENT ON TABLE assessment_competencies IS
    'Self-assessed competencies (levels 1-5: notions, débutant, autonome, confirmé, expert).';

CREATE INDEX IF NOT EXISTS idx_assessment_competencies_category
    ON assessment_competencies (category);
CREATE INDEX IF NOT EXISTS idx_assessment_competencies_levels
    ON assessment_competencies (assessment_id, self_level DESC);

DROP TRIGGER IF EXISTS trg_assessment_competencies_updated_at ON assessment_competencies;
CREATE TRIGGER trg_assessment_competencies_updated_at BEFORE UPDATE ON assessment_competencies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
