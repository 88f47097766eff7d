-- Rollback of migration 003: restores the 002 version of users_normalize() and
-- of its trigger (which must no longer reference cv_url), then removes
-- users.cv_url and its format check.

CREATE OR REPLACE FUNCTION users_normalize()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.email := lower(btrim(NEW.email));
    NEW.first_name := btrim(NEW.first_name);
    NEW.last_name := btrim(NEW.last_name);
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_users_normalize ON users;
CREATE TRIGGER trg_users_normalize
    BEFORE INSERT OR UPDATE OF email, first_name, last_name ON users
    FOR EACH ROW EXECUTE FUNCTION users_normalize();

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_cv_url_format_check;
ALTER TABLE users DROP COLUMN IF EXISTS cv_url;
