-- Migration 027: authentication flow tables
--
--   email_verification_tokens  e-mail confirmation links (SHA-256 of the token
--                              only; replaces users.email_verification_token of
--                              026, whose pending tokens are copied here)
--   password_reset_tokens      "mot de passe oublié" links, single use
--   auth_sessions              refresh-token sessions (hashed), revocable
--   user_preferences           language, time zone, notification settings and
--                              the assessment to resume (last_assessment_id,
--                              hence the dependency on 018 of the guide's graph)
-- Using a reset token (used_at set) revokes every open session of the user.
-- cleanup_expired_auth_tokens() purges expired/used tokens and dead sessions.
-- Token hashes are computed with the core sha256() function (no pgcrypto).
--
-- depends: 018, 026

CREATE TABLE IF NOT EXISTS email_verification_tokens (
    id         uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash char(64)     NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    email      varchar(255) NOT NULL,
    expires_at timestamptz  NOT NULL,
    used_at    timestamptz,
    created_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT email_verification_tokens_expiry_check CHECK (expires_at > created_at)
);

CREATE TABLE IF NOT EXISTS password_reset_tokens (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   char(64)    NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    requested_ip inet,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT password_reset_tokens_expiry_check
        CHECK (expires_at > created_at AND expires_at <= created_at + interval '24 hours')
);

CREATE TABLE IF NOT EXISTS auth_sessions (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_token_hash char(64)    NOT NULL UNIQUE CHECK (refresh_token_hash ~ '^[0-9a-f]{64}$'),
    user_agent         text,
    ip_address         inet,
    expires_at         timestamptz NOT NULL,
    last_used_at       timestamptz,
    revoked_at         timestamptz,
    revoked_reason     varchar(30)
        CHECK (revoked_reason IN ('logout', 'password_reset', 'admin', 'expired', 'suspicious')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT auth_sessions_expiry_check CHECK (expires_at > created_at),
    CONSTRAINT auth_sessions_revoked_check CHECK (revoked_reason IS NULL OR revoked_at IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS user_preferences (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               uuid        NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    language              varchar(5)  NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
    timezone              varchar(64) NOT NULL DEFAULT 'Europe/Paris',
    email_notifications   boolean     NOT NULL DEFAULT true,
    sms_notifications     boolean     NOT NULL DEFAULT false,
    reminder_hours_before smallint    NOT NULL DEFAULT 24 CHECK (reminder_hours_before BETWEEN 1 AND 168),
    theme                 varchar(10) NOT NULL DEFAULT 'system' CHECK (theme IN ('light', 'dark', 'system')),
    last_assessment_id    uuid        REFERENCES assessments (id) ON DELETE SET NULL,
    preferences           jsonb       NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(preferences) = 'object'),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_email_verification_tokens_user_id ON email_verification_tokens (user_id);
CREATE INDEX IF NOT EXISTS idx_email_verification_tokens_expires_at ON email_verification_tokens (expires_at);
CREATE INDEX IF NOT EXISTS idx_password_reset_tokens_user_id ON password_reset_tokens (user_id);
CREATE INDEX IF NOT EXISTS idx_password_reset_tokens_expires_at ON password_reset_tokens (expires_at);
CREATE INDEX IF NOT EXISTS idx_auth_sessions_user_active ON auth_sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_auth_sessions_expires_at ON auth_sessions (expires_at);
CREATE INDEX IF NOT EXISTS idx_user_preferences_last_assessment_id ON user_preferences (last_assessment_id);

DROP TRIGGER IF EXISTS trg_auth_sessions_updated_at ON auth_sessions;
CREATE TRIGGER trg_auth_sessions_updated_at BEFORE UPDATE ON auth_sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_user_preferences_updated_at ON user_preferences;
CREATE TRIGGER trg_user_preferences_updated_at BEFORE UPDATE ON user_preferences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION revoke_sessions_on_password_reset()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
BEGIN
    IF NEW.used_at IS NOT NULL AND OLD.used_at IS NULL THEN
        UPDATE auth_sessions
        SET revoked_at = now(), revoked_reason = 'password_reset'
        WHERE user_id = NEW.user_id AND revoked_at IS NULL;
        -- Other outstanding reset links of the user become void.
        UPDATE password_reset_tokens
        SET used_at = NEW.used_at
        WHERE user_id = NEW.user_id AND id <> NEW.id AND used_at IS NULL;
    END IF;
    RETURN NULL;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_password_reset_tokens_revoke_sessions ON password_reset_tokens;
CREATE TRIGGER trg_password_reset_tokens_revoke_sessions
    AFTER UPDATE OF used_at ON password_reset_tokens
    FOR EACH ROW EXECUTE FUNCTION revoke_sessions_on_password_reset();

CREATE OR REPLACE FUNCTION cleanup_expired_auth_tokens(p_retention interval DEFAULT interval '7 days')
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_total integer := 0;
    v_count integer;
BEGIN
    DELETE FROM email_verification_tokens
    WHERE expires_at < now() - p_retention OR used_at < now() - p_retention;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;

    DELETE FROM password_reset_tokens
    WHERE expires_at < now() - p_retention OR used_at < now() - p_retention;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_total := v_total + v_count;

    DELETE FROM auth_sessions
    WHERE expires_at < now() - p_retention OR revoked_at < now() - p_retention;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_total + v_count;
END;
$fn$;

COMMENT ON FUNCTION cleanup_expired_auth_tokens(interval) IS
    'Deletes tokens and sessions expired, used or revoked more than p_retention ago; returns the count.';

-- Carry over the pending verification tokens of 026 (hashed).
INSERT INTO email_verification_tokens (user_id, token_hash, email, expires_at)
SELECT u.id, encode(sha256(convert_to(u.email_verification_token, 'UTF8')), 'hex'),
       u.email, u.email_verification_token_expires_at
FROM users u
WHERE u.email_verification_token IS NOT NULL
  AND u.email_verified_at IS NULL
  AND u.email_verification_token_expires_at > now()
ON CONFLICT (token_hash) DO NOTHING;
