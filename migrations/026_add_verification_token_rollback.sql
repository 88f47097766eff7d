-- Rollback of migration 026: removes the verification token index, check and
-- columns from users.

DROP INDEX IF EXISTS users_email_verification_token_key;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_verification_token_check;
ALTER TABLE users DROP COLUMN IF EXISTS email_verification_token_expires_at;
ALTER TABLE users DROP COLUMN IF EXISTS email_verification_token;
