-- Migration 003: add users.cv_url
--
-- Beneficiaries upload their CV at the start of the bilan (phase préliminaire);
-- the file lives in object storage and users.cv_url points to it. More CV
-- metadata (name, size, type, extracted text) arrives with 023.
--
-- The normalisation trigger of 002 (users_normalize(), trg_users_normalize) is
-- extended to cv_url: the URL is trimmed and an empty value (a cleared upload
-- field) is stored as NULL ("no CV") instead of failing
-- users_cv_url_format_check; the trigger now also fires on UPDATE OF cv_url.
-- The rollback puts back the 002 version of the function and the trigger.

ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_url text;

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_cv_url_format_check,
    ADD CONSTRAINT users_cv_url_format_check CHECK (cv_url ~ '^(https?|s3)://');

COMMENT ON COLUMN users.cv_url IS 'Location of the beneficiary''s current CV in object storage.';

CREATE OR REPLACE FUNCTION users_normalize()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.email := lower(btrim(NEW.email));
    NEW.first_name := btrim(NEW.first_name);
    NEW.last_name := btrim(NEW.last_name);
    NEW.cv_url := nullif(btrim(NEW.cv_url), '');
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_users_normalize ON users;
CREATE TRIGGER trg_users_normalize
    BEFORE INSERT OR UPDATE OF email, first_name, last_name, cv_url ON users
    FOR EACH ROW EXECUTE FUNCTION users_normalize();
