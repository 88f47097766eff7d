-- Rollback of migration 004: removes users.cv_uploaded_at, its check and index.

DROP INDEX IF EXISTS idx_users_cv_uploaded_at;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_cv_uploaded_at_check;
ALTER TABLE users DROP COLUMN IF EXISTS cv_uploaded_at;
