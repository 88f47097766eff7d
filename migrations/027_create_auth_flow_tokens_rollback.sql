-- Rollback of migration 027: drops cleanup_expired_auth_tokens(), the four
-- auth tables (indexes and triggers go with them) and the session revocation
-- function. The tokens copied from users.email_verification_token are still
-- in users (027 does not clear that column), so nothing is lost for 026.

DROP FUNCTION IF EXISTS cleanup_expired_auth_tokens(interval);
DROP TABLE IF EXISTS user_preferences;
DROP TABLE IF EXISTS auth_sessions;
DROP TABLE IF EXISTS password_reset_tokens;
DROP TABLE IF EXISTS email_verification_tokens;
DROP FUNCTION IF EXISTS revoke_sessions_on_password_reset();
