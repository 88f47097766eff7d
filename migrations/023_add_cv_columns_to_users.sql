-- Migration 023: CV metadata columns on users
--
-- Completes the CV columns of 003/004 with what the upload and AI pipeline
-- need: original file name, size (10 MB max), MIME type (PDF, Word,
-- OpenDocument, RTF, plain text), the extracted text and when it was parsed.
-- A French full-text index on the extracted text lets consultants search the
-- CVs of their beneficiaries. audit_row_change() (002) already strips cv_text
-- from the audit trail.
--
-- depends: 004

ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_file_name varchar(255);
ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_file_size bigint;
ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_mime_type varchar(100);
ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_text text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_parsed_at timestamptz;

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_cv_file_size_check,
    ADD CONSTRAINT users_cv_file_size_check CHECK (cv_file_size > 0 AND cv_file_size <= 10485760);
ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_cv_mime_type_check,
    ADD CONSTRAINT users_cv_mime_type_check CHECK (cv_mime_type IN (
        'application/pdf',
        'application/msword',
        'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
        'application/vnd.oasis.opendocument.text',
        'application/rtf',
        'text/plain'));
ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_cv_file_name_check,
    ADD CONSTRAINT users_cv_file_name_check CHECK (cv_file_name IS NULL OR cv_url IS NOT NULL);

CREATE INDEX IF NOT EXISTS idx_users_cv_text_fts
    ON users USING gin (to_tsvector('french'::regconfig, coalesce(cv_text, '')));

COMMENT ON COLUMN users.cv_text IS 'Plain text extracted from the CV (input of the AI analyses, searchable).';
COMMENT ON COLUMN users.cv_file_size IS 'CV size in bytes (max 10 MB).';
