-- Migration 004: add users.cv_uploaded_at
--
-- Records when the current CV was uploaded, so that consultants can see whether
-- the CV predates the bilan and the AI analysis (020) can be re-run on upload.
-- A CV upload time only makes sense together with a CV: checked below.

ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_uploaded_at timestamptz;

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_cv_uploaded_at_check,
    ADD CONSTRAINT users_cv_uploaded_at_check CHECK (cv_uploaded_at IS NULL OR cv_url IS NOT NULL);

CREATE INDEX IF NOT EXISTS idx_users_cv_uploaded_at ON users (cv_uploaded_at)
    WHERE cv_uploaded_at IS NOT NULL;

COMMENT ON COLUMN users.cv_uploaded_at IS 'When users.cv_url was last (re)uploaded.';
