-- Migration 020: AI tables
--
-- Storage and AI features of the platform:
--   files                 uploaded files (CV, diplomas, reports) in object storage
--   test_results          results of the psychometric questionnaires (MBTI,
--                         RIASEC, values, interests); the guide lists it in the
--                         Tests category without a migration: it lives here
--                         because personality_analyses references it
--   cv_analyses           AI extraction of a CV (skills, experience, languages)
--   job_recommendations   matching jobs (codes ROME) with score and skill gaps
--   personality_analyses  AI interpretation of test results
--   action_plans          the post-bilan action plan (projet professionnel)
--   consultant_analytics  per-consultant activity figures, computed by
--                         refresh_consultant_analytics(org, start, end)
-- Row level security on files, cv_analyses, job_recommendations,
-- personality_analyses and action_plans (rules of 002).
--
-- cv_analyses_track_status() and its trigger are the original, buggy version
-- (fires on UPDATE only, so an analysis inserted as 'completed' violates
-- cv_analyses_completed_check; and it re-stamps completed_at on every update).
-- Migration 025 fixes them. They are created only when absent, so re-running
-- 020 after 025 does not bring the bug back.
-- refresh_consultant_analytics() reads satisfaction_surveys (011) besides the
-- assessments chain (019).
--
-- depends: 011, 019

CREATE TABLE IF NOT EXISTS files (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    bilan_id        uuid         REFERENCES bilans (id) ON DELETE SET NULL,
    file_name       varchar(255) NOT NULL CHECK (file_name !~ '[/\\]' AND length(file_name) > 0),
    storage_path    text         NOT NULL UNIQUE,
    mime_type       varchar(100) NOT NULL,
    file_size_bytes bigint       NOT NULL CHECK (file_size_bytes > 0 AND file_size_bytes <= 52428800),
    category        varchar(30)  NOT NULL DEFAULT 'other'
        CHECK (category IN ('cv', 'cover_letter', 'diploma', 'certificate', 'assessment_report',
                            'synthesis', 'other')),
    description     text,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS test_results (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    assessment_id uuid        REFERENCES assessments (id) ON DELETE SET NULL,
    test_type     varchar(20) NOT NULL CHECK (test_type IN ('mbti', 'riasec', 'values', 'interests')),
    status        varchar(20) NOT NULL DEFAULT 'in_progress'
        CHECK (status IN ('in_progress', 'completed', 'abandoned')),
    answers       jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(answers) = 'object'),
    scores        jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(scores) = 'object'),
    result_code   varchar(10),
    started_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT test_results_completed_check CHECK (status <> 'completed' OR completed_at IS NOT NULL),
    CONSTRAINT test_results_result_code_check CHECK (
           result_code IS NULL
        OR (test_type = 'mbti' AND result_code ~ '^[EI][SN][TF][JP]$')
        OR (test_type = 'riasec' AND result_code ~ '^[RIASEC]{1,3}$')
        OR test_type IN ('values', 'interests'))
);

CREATE TABLE IF NOT EXISTS cv_analyses (
    id               uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_id          uuid         REFERENCES files (id) ON DELETE SET NULL,
    assessment_id    uuid         REFERENCES assessments (id) ON DELETE SET NULL,
    status           varchar(20)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    extracted_skills jsonb        NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(extracted_skills) = 'array'),
    experiences      jsonb        NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(experiences) = 'array'),
    education        jsonb        NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(education) = 'array'),
    languages        jsonb        NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(languages) = 'array'),
    experience_years numeric(4,1) CHECK (experience_years BETWEEN 0 AND 60),
    education_level  varchar(50),
    summary          text,
    ai_model         varchar(100),
    confidence_score numeric(4,3) CHECK (confidence_score BETWEEN 0 AND 1),
    error_message    text,
    completed_at     timestamptz,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT cv_analyses_completed_check CHECK (status <> 'completed' OR completed_at IS NOT NULL),
    CONSTRAINT cv_analyses_failed_check CHECK (status <> 'failed' OR error_message IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS job_recommendations (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    assessment_id   uuid         REFERENCES assessments (id) ON DELETE SET NULL,
    cv_analysis_id  uuid         REFERENCES cv_analyses (id) ON DELETE SET NULL,
    rome_code       varchar(5)   CHECK (rome_code ~ '^[A-N][0-9]{4}$'),
    job_title       varchar(255) NOT NULL,
    sector          varchar(100),
    match_score     numeric(5,2) CHECK (match_score BETWEEN 0 AND 100),
    reasons         jsonb        NOT NULL DEFAULT '[]'::jsonb,
    required_skills jsonb        NOT NULL DEFAULT '[]'::jsonb,
    skill_gaps      jsonb        NOT NULL DEFAULT '[]'::jsonb,
    salary_min      integer      CHECK (salary_min >= 0),
    salary_max      integer,
    region          varchar(100),
    status          varchar(20)  NOT NULL DEFAULT 'suggested'
        CHECK (status IN ('suggested', 'saved', 'dismissed', 'applied')),
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT job_recommendations_salary_check CHECK (salary_max >= salary_min)
);

CREATE TABLE IF NOT EXISTS personality_analyses (
    id                uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    assessment_id     uuid         REFERENCES assessments (id) ON DELETE SET NULL,
    test_result_id    uuid         REFERENCES test_results (id) ON DELETE SET NULL,
    analysis_type     varchar(20)  NOT NULL
        CHECK (analysis_type IN ('mbti', 'riasec', 'big_five', 'values', 'interests')),
    mbti_type         char(4)      CHECK (mbti_type ~ '^[EI][SN][TF][JP]$'),
    riasec_code       varchar(3)   CHECK (riasec_code ~ '^[RIASEC]{1,3}$'),
    traits            jsonb        NOT NULL DEFAULT '{}'::jsonb,
    strengths         jsonb        NOT NULL DEFAULT '[]'::jsonb,
    development_areas jsonb        NOT NULL DEFAULT '[]'::jsonb,
    work_style        text,
    ai_model          varchar(100),
    confidence_score  numeric(4,3) CHECK (confidence_score BETWEEN 0 AND 1),
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT personality_analyses_mbti_check CHECK (analysis_type <> 'mbti' OR mbti_type IS NOT NULL),
    CONSTRAINT personality_analyses_riasec_check CHECK (analysis_type <> 'riasec' OR riasec_code IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS action_plans (
    id                  uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bilan_id            uuid         REFERENCES bilans (id) ON DELETE SET NULL,
    assessment_id       uuid         REFERENCES assessments (id) ON DELETE SET NULL,
    consultant_id       uuid         REFERENCES users (id) ON DELETE SET NULL,
    title               varchar(255) NOT NULL,
    objective           text,
    status              varchar(20)  NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'active', 'completed', 'abandoned')),
    actions             jsonb        NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(actions) = 'array'),
    target_date         date,
    progress_percentage smallint     NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    validated_at        timestamptz,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now()
);

COMMENT ON COLUMN action_plans.actions IS
    'Steps of the plan: [{"label", "type" (formation, VAE, candidature, enquête métier...), "due_date", "done"}].';

CREATE TABLE IF NOT EXISTS consultant_analytics (
    id                      uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    consultant_id           uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id         uuid         REFERENCES organizations (id) ON DELETE CASCADE,
    period_start            date         NOT NULL,
    period_end              date         NOT NULL,
    active_beneficiaries    integer      NOT NULL DEFAULT 0 CHECK (active_beneficiaries >= 0),
    bilans_started          integer      NOT NULL DEFAULT 0 CHECK (bilans_started >= 0),
    bilans_completed        integer      NOT NULL DEFAULT 0 CHECK (bilans_completed >= 0),
    avg_bilan_duration_days numeric(6,1) CHECK (avg_bilan_duration_days >= 0),
    avg_satisfaction        numeric(4,2) CHECK (avg_satisfaction BETWEEN 0 AND 10),
    ai_analyses_count       integer      NOT NULL DEFAULT 0 CHECK (ai_analyses_count >= 0),
    computed_at             timestamptz  NOT NULL DEFAULT now(),
    created_at              timestamptz  NOT NULL DEFAULT now(),
    updated_at              timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT consultant_analytics_period_check CHECK (period_end >= period_start),
    CONSTRAINT consultant_analytics_period_key UNIQUE (consultant_id, period_start, period_end)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_files_user_id ON files (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_files_organization_id ON files (organization_id);
CREATE INDEX IF NOT EXISTS idx_files_bilan_id ON files (bilan_id);
CREATE INDEX IF NOT EXISTS idx_files_category ON files (user_id, category);

CREATE INDEX IF NOT EXISTS idx_test_results_user_type ON test_results (user_id, test_type, completed_at DESC);
CREATE INDEX IF NOT EXISTS idx_test_results_assessment_id ON test_results (assessment_id);

CREATE INDEX IF NOT EXISTS idx_cv_analyses_user_id ON cv_analyses (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_cv_analyses_file_id ON cv_analyses (file_id);
CREATE INDEX IF NOT EXISTS idx_cv_analyses_assessment_id ON cv_analyses (assessment_id);
CREATE INDEX IF NOT EXISTS idx_cv_analyses_queue ON cv_analyses (created_at)
    WHERE status IN ('pending', 'processing');
CREATE INDEX IF NOT EXISTS idx_cv_analyses_skills ON cv_analyses USING gin (extracted_skills jsonb_path_ops);

CREATE INDEX IF NOT EXISTS idx_job_recommendations_user_score
    ON job_recommendations (user_id, match_score DESC);
CREATE INDEX IF NOT EXISTS idx_job_recommendations_assessment_id ON job_recommendations (assessment_id);
CREATE INDEX IF NOT EXISTS idx_job_recommendations_cv_analysis_id ON job_recommendations (cv_analysis_id);
CREATE INDEX IF NOT EXISTS idx_job_recommendations_rome_code ON job_recommendations (rome_code);

CREATE INDEX IF NOT EXISTS idx_personality_analyses_user_id ON personality_analyses (user_id, analysis_type);
CREATE INDEX IF NOT EXISTS idx_personality_analyses_assessment_id ON personality_analyses (assessment_id);
CREATE INDEX IF NOT EXISTS idx_personality_analyses_test_result_id ON personality_analyses (test_result_id);

CREATE INDEX IF NOT EXISTS idx_action_plans_user_id ON action_plans (user_id, status);
CREATE INDEX IF NOT EXISTS idx_action_plans_bilan_id ON action_plans (bilan_id);
CREATE INDEX IF NOT EXISTS idx_action_plans_assessment_id ON action_plans (assessment_id);
CREATE INDEX IF NOT EXISTS idx_action_plans_consultant_id ON action_plans (consultant_id);

CREATE INDEX IF NOT EXISTS idx_consultant_analytics_organization
    ON consultant_analytics (organization_id, period_start);

-- updated_at maintenance
DROP TRIGGER IF EXISTS trg_files_updated_at ON files;
CREATE TRIGGER trg_files_updated_at BEFORE UPDATE ON files
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER IF EXISTS trg_test_results_updated_at ON test_results;
CREATE TRIGGER trg_test_results_updated_at BEFORE UPDATE ON test_results
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER IF EXISTS trg_cv_analyses_updated_at ON cv_analyses;
CREATE TRIGGER trg_cv_analyses_updated_at BEFORE UPDATE ON cv_analyses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER IF EXISTS trg_job_recommendations_updated_at ON job_recommendations;
CREATE TRIGGER trg_job_recommendations_updated_at BEFORE UPDATE ON job_recommendations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER IF EXISTS trg_personality_analyses_updated_at ON personality_analyses;
CREATE TRIGGER trg_personality_analyses_updated_at BEFORE UPDATE ON personality_analyses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER IF EXISTS trg_action_plans_updated_at ON action_plans;
CREATE TRIGGER trg_action_plans_updated_at BEFORE UPDATE ON action_plans
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DROP TRIGGER IF EXISTS trg_consultant_analytics_updated_at ON consultant_analytics;
CREATE TRIGGER trg_consultant_analytics_updated_at BEFORE UPDATE ON consultant_analytics
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- cv_analyses status trigger, original (buggy) version; fixed by 025.
DO $do$
BEGIN
    IF to_regprocedure('cv_analyses_track_status()') IS NULL THEN
        CREATE FUNCTION cv_analyses_track_status()
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
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'cv_analyses'::regclass
                     AND tgname = 'trg_cv_analyses_track_status') THEN
        CREATE TRIGGER trg_cv_analyses_track_status BEFORE UPDATE ON cv_analyses
            FOR EACH ROW EXECUTE FUNCTION cv_analyses_track_status();
    END IF;
END;
$do$;

-- Consultant activity figures for a period.
CREATE OR REPLACE FUNCTION refresh_consultant_analytics(p_organization_id uuid,
                                                        p_period_start date,
                                                        p_period_end date)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_count integer;
BEGIN
    INSERT INTO consultant_analytics AS a (consultant_id, organization_id, period_start, period_end,
                                           active_beneficiaries, bilans_started, bilans_completed,
                                           avg_bilan_duration_days, avg_satisfaction,
                                           ai_analyses_count, computed_at)
    SELECT u.id, p_organization_id, p_period_start, p_period_end,
           (SELECT count(DISTINCT b.beneficiary_id) FROM bilans b
             WHERE b.consultant_id = u.id AND b.status NOT IN ('draft', 'cancelled')
               AND coalesce(b.start_date, b.created_at::date) <= p_period_end
               AND coalesce(b.actual_end_date, p_period_end) >= p_period_start),
           (SELECT count(*) FROM bilans b
             WHERE b.consultant_id = u.id
               AND b.start_date BETWEEN p_period_start AND p_period_end),
           (SELECT count(*) FROM bilans b
             WHERE b.consultant_id = u.id AND b.status = 'completed'
               AND b.actual_end_date BETWEEN p_period_start AND p_period_end),
           (SELECT round(avg(b.actual_end_date - b.start_date), 1) FROM bilans b
             WHERE b.consultant_id = u.id AND b.status = 'completed'
               AND b.actual_end_date BETWEEN p_period_start AND p_period_end),
           (SELECT round(avg(s.overall_score), 2) FROM satisfaction_surveys s
              JOIN bilans b ON b.id = s.bilan_id
             WHERE b.consultant_id = u.id AND s.status = 'completed'
               AND s.completed_at >= p_period_start AND s.completed_at < p_period_end + 1),
           (SELECT count(*) FROM cv_analyses c
             WHERE c.created_at >= p_period_start AND c.created_at < p_period_end + 1
               AND c.user_id IN (SELECT b.beneficiary_id FROM bilans b WHERE b.consultant_id = u.id))
           + (SELECT count(*) FROM personality_analyses pa
             WHERE pa.created_at >= p_period_start AND pa.created_at < p_period_end + 1
               AND pa.user_id IN (SELECT b.beneficiary_id FROM bilans b WHERE b.consultant_id = u.id)),
           now()
    FROM users u
    WHERE u.organization_id = p_organization_id AND u.role = 'consultant' AND u.deleted_at IS NULL
    ON CONFLICT (consultant_id, period_start, period_end) DO UPDATE SET
        organization_id = EXCLUDED.organization_id,
        active_beneficiaries = EXCLUDED.active_beneficiaries,
        bilans_started = EXCLUDED.bilans_started,
        bilans_completed = EXCLUDED.bilans_completed,
        avg_bilan_duration_days = EXCLUDED.avg_bilan_duration_days,
        avg_satisfaction = EXCLUDED.avg_satisfaction,
        ai_analyses_count = EXCLUDED.ai_analyses_count,
        computed_at = EXCLUDED.computed_at;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$fn$;

-- Row level security
ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE cv_analyses ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_recommendations ENABLE ROW LEVEL SECURITY;
ALTER TABLE personality_analyses ENABLE ROW LEVEL SECURITY;
ALTER TABLE action_plans ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS files_select ON files;
CREATE POLICY files_select ON files FOR SELECT
    USING (app_can_read(user_id, organization_id));
DROP POLICY IF EXISTS files_write ON files;
CREATE POLICY files_write ON files FOR ALL
    USING (app_can_write(user_id, organization_id))
    WITH CHECK (app_can_write(user_id, organization_id));

DROP POLICY IF EXISTS cv_analyses_select ON cv_analyses;
CREATE POLICY cv_analyses_select ON cv_analyses FOR SELECT
    USING (app_can_read(user_id));
DROP POLICY IF EXISTS cv_analyses_write ON cv_analyses;
CREATE POLICY cv_analyses_write ON cv_analyses FOR ALL
    USING (app_can_write(user_id))
    WITH CHECK (app_can_write(user_id));

DROP POLICY IF EXISTS job_recommendations_select ON job_recommendations;
CREATE POLICY job_recommendations_select ON job_recommendations FOR SELECT
    USING (app_can_read(user_id));
DROP POLICY IF EXISTS job_recommendations_write ON job_recommendations;
CREATE POLICY job_recommendations_write ON job_recommendations FOR ALL
    USING (app_can_write(user_id))
    WITH CHECK (app_can_write(user_id));

DROP POLICY IF EXISTS personality_analyses_select ON personality_analyses;
CREATE POLICY personality_analyses_select ON personality_analyses FOR SELECT
    USING (app_can_read(user_id));
DROP POLICY IF EXISTS personality_analyses_write ON personality_analyses;
CREATE POLICY personality_analyses_write ON personality_analyses FOR ALL
    USING (app_can_write(user_id))
    WITH CHECK (app_can_write(user_id));

DROP POLICY IF EXISTS action_plans_select ON action_plans;
CREATE POLICY action_plans_select ON action_plans FOR SELECT
    USING (consultant_id = app_current_user_id() OR app_can_read(user_id));
DROP POLICY IF EXISTS action_plans_write ON action_plans;
CREATE POLICY action_plans_write ON action_plans FOR ALL
    USING (consultant_id = app_current_user_id() OR app_can_write(user_id))
    WITH CHECK (consultant_id = app_current_user_id() OR app_can_write(user_id));
