-- Migration 003: add users.cv_url
--
-- Beneficiaries upload their CV at the start of the bilan (phase préliminaire);
-- the file lives in object storage and users.cv_url points to it. More CV
-- metadata (name, size, type, extracted text) arrives with 023.

ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_url text;

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_cv_url_format_check,
    ADD CONSTRAINT users_cv_url_format_check CHECK (cv_url ~ '^(https?|s3)://');

COMMENT ON COLUMN users.cv_url IS 'Location of the beneficiary''s current CV in object storage.';
