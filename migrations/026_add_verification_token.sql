-- Migration 026: e-mail verification token on users
--
-- Sign-up sends a link carrying a random token; users.email_verification_token
-- holds it until the address is confirmed (email_verified_at, 001), valid
-- until email_verification_token_expires_at. A token always has an expiry and
-- is unique. audit_row_change() (002) strips the token from the audit trail.
-- (027 moves verification to a dedicated, hashed token table and copies the
-- pending tokens.)
-- Like the other fixes (023-025) it is independent: it only touches users
-- (001/002); the guide's order 025 -> 026 is declared, not inferred.
--
-- depends: 025

ALTER TABLE users ADD COLUMN IF NOT EXISTS email_verification_token varchar(128);
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_verification_token_expires_at timestamptz;

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_email_verification_token_check,
    ADD CONSTRAINT users_email_verification_token_check CHECK (
        email_verification_token IS NULL
        OR (length(email_verification_token) >= 32
            AND email_verification_token_expires_at IS NOT NULL));

CREATE UNIQUE INDEX IF NOT EXISTS users_email_verification_token_key
    ON users (email_verification_token) WHERE email_verification_token IS NOT NULL;

COMMENT ON COLUMN users.email_verification_token IS
    'Pending e-mail verification token (cleared once the address is verified).';
