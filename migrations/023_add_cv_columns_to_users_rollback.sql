-- Rollback of migration 023: removes the full-text index, the checks and the
-- five CV columns added to users.

DROP INDEX IF EXISTS idx_users_cv_text_fts;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_cv_file_name_check;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_cv_mime_type_check;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_cv_file_size_check;
ALTER TABLE users DROP COLUMN IF EXISTS cv_parsed_at;
ALTER TABLE users DROP COLUMN IF EXISTS cv_text;
ALTER TABLE users DROP COLUMN IF EXISTS cv_mime_type;
ALTER TABLE users DROP COLUMN IF EXISTS cv_file_size;
ALTER TABLE users DROP COLUMN IF EXISTS cv_file_name;
