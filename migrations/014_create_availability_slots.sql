-- Migration 014: availability_slots (scheduling chain 014 -> 017)
--
-- Consultants publish availability slots (individual or small group sessions,
-- in person, by video or phone); beneficiaries book them (015). A trigger
-- refuses overlapping active slots of the same consultant (core PostgreSQL has
-- no btree_gist, hence a trigger serialised by an advisory lock instead of an
-- exclusion constraint). get_available_slots() lists bookable slots.
-- Needs only the core schema of 001.
--
-- depends: 001

CREATE TABLE IF NOT EXISTS availability_slots (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    consultant_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id     uuid        REFERENCES organizations (id) ON DELETE CASCADE,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    capacity            smallint    NOT NULL DEFAULT 1 CHECK (capacity BETWEEN 1 AND 20),
    booked_count        smallint    NOT NULL DEFAULT 0,
    location_type       varchar(20) NOT NULL DEFAULT 'video'
        CHECK (location_type IN ('in_person', 'video', 'phone')),
    location            text,
    status              varchar(20) NOT NULL DEFAULT 'available'
        CHECK (status IN ('available', 'blocked', 'cancelled')),
    recurrence_rule     text,
    recurrence_group_id uuid,
    notes               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT availability_slots_time_check CHECK (ends_at > starts_at),
    CONSTRAINT availability_slots_max_duration_check CHECK (ends_at - starts_at <= interval '8 hours'),
    CONSTRAINT availability_slots_booked_count_check CHECK (booked_count BETWEEN 0 AND capacity)
);

COMMENT ON COLUMN availability_slots.recurrence_rule IS
    'RFC 5545 RRULE of the series the slot was generated from (slots of a series share recurrence_group_id).';

CREATE INDEX IF NOT EXISTS idx_availability_slots_consultant_start
    ON availability_slots (consultant_id, starts_at);
CREATE INDEX IF NOT EXISTS idx_availability_slots_organization_id
    ON availability_slots (organization_id, starts_at);
CREATE INDEX IF NOT EXISTS idx_availability_slots_open
    ON availability_slots (starts_at) WHERE status = 'available';
CREATE INDEX IF NOT EXISTS idx_availability_slots_period
    ON availability_slots USING gist (tstzrange(starts_at, ends_at));
CREATE INDEX IF NOT EXISTS idx_availability_slots_recurrence_group
    ON availability_slots (recurrence_group_id) WHERE recurrence_group_id IS NOT NULL;

CREATE OR REPLACE FUNCTION availability_slots_prevent_overlap()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.status = 'cancelled' THEN
        RETURN NEW;
    END IF;
    -- Serialise concurrent writers for the same consultant.
    PERFORM pg_advisory_xact_lock(hashtext('availability_slots:' || NEW.consultant_id::text));
    IF EXISTS (
        SELECT 1 FROM availability_slots s
        WHERE s.consultant_id = NEW.consultant_id
          AND s.id <> NEW.id
          AND s.status <> 'cancelled'
          AND tstzrange(s.starts_at, s.ends_at) && tstzrange(NEW.starts_at, NEW.ends_at)
    ) THEN
        RAISE EXCEPTION 'availability slot overlaps another slot of consultant %', NEW.consultant_id
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_availability_slots_prevent_overlap ON availability_slots;
CREATE TRIGGER trg_availability_slots_prevent_overlap
    BEFORE INSERT OR UPDATE OF consultant_id, starts_at, ends_at, status ON availability_slots
    FOR EACH ROW EXECUTE FUNCTION availability_slots_prevent_overlap();

DROP TRIGGER IF EXISTS trg_availability_slots_updated_at ON availability_slots;
CREATE TRIGGER trg_availability_slots_updated_at BEFORE UPDATE ON availability_slots
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION get_available_slots(p_consultant_id uuid,
                                               p_from timestamptz,
                                               p_to timestamptz)
RETURNS SETOF availability_slots
LANGUAGE sql STABLE
AS $fn$
    SELECT s.*
    FROM availability_slots s
    WHERE (p_consultant_id IS NULL OR s.consultant_id = p_consultant_id)
      AND s.status = 'available'
      AND s.booked_count < s.capacity
      AND s.starts_at >= greatest(p_from, now())
      AND s.starts_at < p_to
    ORDER BY s.starts_at;
$fn$;

COMMENT ON FUNCTION get_available_slots(uuid, timestamptz, timestamptz) IS
    'Future bookable slots in [p_from, p_to), of one consultant or of all (NULL).';
