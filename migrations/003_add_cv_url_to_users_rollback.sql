-- Rollback of migration 003: removes users.cv_url and its format check.

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_cv_url_format_check;
ALTER TABLE users DROP COLUMN IF EXISTS cv_url;
