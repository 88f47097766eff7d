-- Migration 015: session_bookings
--
-- A beneficiary's booking of a consultant's availability slot (or a session
-- scheduled directly by the consultant, slot_id NULL). The booking keeps its own
-- start/end so that it survives the deletion of the slot.
-- Triggers:
--   session_bookings_fill_from_slot()   copies time/consultant/org from the slot;
--   session_bookings_validate_status()  workflow pending -> confirmed ->
--                                       completed | no_show, cancellation from
--                                       pending/confirmed, timestamps stamped;
--   session_bookings_sync_slot()        keeps availability_slots.booked_count
--                                       exact and refuses to overbook.
-- Row level security: the consultant of the booking, plus the generic rules of
-- 002 (app_can_read / app_can_write on the beneficiary and organization).
--
-- depends: 002, 014

CREATE TABLE IF NOT EXISTS session_bookings (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slot_id             uuid        REFERENCES availability_slots (id) ON DELETE SET NULL,
    beneficiary_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    consultant_id       uuid        REFERENCES users (id) ON DELETE SET NULL,
    bilan_id            uuid        REFERENCES bilans (id) ON DELETE SET NULL,
    organization_id     uuid        REFERENCES organizations (id) ON DELETE SET NULL,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    session_type        varchar(20) NOT NULL DEFAULT 'investigation'
        CHECK (session_type IN ('information', 'preliminary', 'investigation', 'conclusion',
                                'follow_up')),
    status              varchar(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'confirmed', 'completed', 'cancelled', 'no_show')),
    confirmed_at        timestamptz,
    completed_at        timestamptz,
    cancelled_at        timestamptz,
    cancelled_by        uuid        REFERENCES users (id) ON DELETE SET NULL,
    cancellation_reason text,
    beneficiary_notes   text,
    consultant_notes    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT session_bookings_time_check CHECK (ends_at > starts_at),
    CONSTRAINT session_bookings_cancelled_check CHECK (status <> 'cancelled' OR cancelled_at IS NOT NULL),
    CONSTRAINT session_bookings_completed_check CHECK (status <> 'completed' OR completed_at IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS idx_session_bookings_slot_id ON session_bookings (slot_id);
CREATE INDEX IF NOT EXISTS idx_session_bookings_beneficiary_id
    ON session_bookings (beneficiary_id, starts_at);
CREATE INDEX IF NOT EXISTS idx_session_bookings_consultant_id
    ON session_bookings (consultant_id, starts_at);
CREATE INDEX IF NOT EXISTS idx_session_bookings_bilan_id ON session_bookings (bilan_id);
CREATE INDEX IF NOT EXISTS idx_session_bookings_organization_id
    ON session_bookings (organization_id, starts_at);
CREATE INDEX IF NOT EXISTS idx_session_bookings_status ON session_bookings (status, starts_at);
CREATE INDEX IF NOT EXISTS idx_session_bookings_cancelled_by ON session_bookings (cancelled_by);

CREATE OR REPLACE FUNCTION session_bookings_fill_from_slot()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_slot availability_slots%ROWTYPE;
BEGIN
    IF NEW.slot_id IS NOT NULL THEN
        SELECT * INTO v_slot FROM availability_slots WHERE id = NEW.slot_id;
        IF FOUND THEN
            IF v_slot.status <> 'available' THEN
                RAISE EXCEPTION 'availability slot % is %', NEW.slot_id, v_slot.status
                    USING ERRCODE = 'check_violation';
            END IF;
            NEW.starts_at := coalesce(NEW.starts_at, v_slot.starts_at);
            NEW.ends_at := coalesce(NEW.ends_at, v_slot.ends_at);
            NEW.consultant_id := coalesce(NEW.consultant_id, v_slot.consultant_id);
            NEW.organization_id := coalesce(NEW.organization_id, v_slot.organization_id);
        END IF;
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_session_bookings_fill_from_slot ON session_bookings;
CREATE TRIGGER trg_session_bookings_fill_from_slot BEFORE INSERT ON session_bookings
    FOR EACH ROW EXECUTE FUNCTION session_bookings_fill_from_slot();

CREATE OR REPLACE FUNCTION session_bookings_validate_status()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('pending', 'confirmed') THEN
            RAISE EXCEPTION 'a new booking must be pending or confirmed, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    ELSIF NOT (
           (OLD.status = 'pending'   AND NEW.status IN ('confirmed', 'cancelled'))
        OR (OLD.status = 'confirmed' AND NEW.status IN ('completed', 'cancelled', 'no_show'))
    ) THEN
        RAISE EXCEPTION 'invalid booking status transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'confirmed' THEN
        NEW.confirmed_at := coalesce(NEW.confirmed_at, now());
    ELSIF NEW.status = 'completed' THEN
        NEW.completed_at := coalesce(NEW.completed_at, now());
    ELSIF NEW.status = 'cancelled' THEN
        NEW.cancelled_at := coalesce(NEW.cancelled_at, now());
        NEW.cancelled_by := coalesce(NEW.cancelled_by, app_current_user_id());
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_session_bookings_validate_status ON session_bookings;
CREATE TRIGGER trg_session_bookings_validate_status
    BEFORE INSERT OR UPDATE OF status ON session_bookings
    FOR EACH ROW EXECUTE FUNCTION session_bookings_validate_status();

CREATE OR REPLACE FUNCTION session_bookings_sync_slot()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_slot_id uuid;
    v_booked  integer;
    v_cap     integer;
BEGIN
    FOR v_slot_id IN
        SELECT DISTINCT x FROM unnest(ARRAY[
            CASE WHEN TG_OP <> 'INSERT' THEN OLD.slot_id END,
            CASE WHEN TG_OP <> 'DELETE' THEN NEW.slot_id END]) AS x
        WHERE x IS NOT NULL
    LOOP
        SELECT capacity INTO v_cap FROM availability_slots WHERE id = v_slot_id FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        SELECT count(*) INTO v_booked FROM session_bookings
        WHERE slot_id = v_slot_id AND status IN ('pending', 'confirmed');
        IF v_booked > v_cap THEN
            RAISE EXCEPTION 'availability slot % is full (capacity %)', v_slot_id, v_cap
                USING ERRCODE = 'check_violation';
        END IF;
        UPDATE availability_slots SET booked_count = v_booked
        WHERE id = v_slot_id AND booked_count IS DISTINCT FROM v_booked;
    END LOOP;
    RETURN NULL;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_session_bookings_sync_slot ON session_bookings;
CREATE TRIGGER trg_session_bookings_sync_slot
    AFTER INSERT OR DELETE OR UPDATE OF slot_id, status ON session_bookings
    FOR EACH ROW EXECUTE FUNCTION session_bookings_sync_slot();

DROP TRIGGER IF EXISTS trg_session_bookings_updated_at ON session_bookings;
CREATE TRIGGER trg_session_bookings_updated_at BEFORE UPDATE ON session_bookings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

ALTER TABLE session_bookings ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS session_bookings_select ON session_bookings;
CREATE POLICY session_bookings_select ON session_bookings FOR SELECT
    USING (consultant_id = app_current_user_id()
           OR app_can_read(beneficiary_id, organization_id));
DROP POLICY IF EXISTS session_bookings_write ON session_bookings;
CREATE POLICY session_bookings_write ON session_bookings FOR ALL
    USING (consultant_id = app_current_user_id()
           OR app_can_write(beneficiary_id, organization_id))
    WITH CHECK (consultant_id = app_current_user_id()
           OR app_can_write(beneficiary_id, organization_id));
