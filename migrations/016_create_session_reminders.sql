-- Migration 016: session_reminders
--
-- Reminders of booked sessions, sent by a dispatcher job (e-mail, SMS, push,
-- in-app). The trigger schedule_booking_reminders() on session_bookings plans
-- the "24 h before" and "1 h before" reminders of both participants when a
-- booking is confirmed (or moved), and when it ends otherwise cancels the
-- pending reminders (a cancellation notice goes to both participants).
-- Reminders are unique per (booking, recipient, channel, type).

CREATE TABLE IF NOT EXISTS session_reminders (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id    uuid        NOT NULL REFERENCES session_bookings (id) ON DELETE CASCADE,
    recipient_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel       varchar(10) NOT NULL DEFAULT 'email'
        CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
    reminder_type varchar(20) NOT NULL
        CHECK (reminder_type IN ('confirmation', '24h_before', '1h_before', 'follow_up',
                                 'cancellation')),
    scheduled_for timestamptz NOT NULL,
    status        varchar(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    sent_at       timestamptz,
    attempts      smallint    NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 10),
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT session_reminders_unique_key UNIQUE (booking_id, recipient_id, channel, reminder_type),
    CONSTRAINT session_reminders_sent_check CHECK (status <> 'sent' OR sent_at IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS idx_session_reminders_due
    ON session_reminders (scheduled_for) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_session_reminders_recipient_id ON session_reminders (recipient_id);
CREATE INDEX IF NOT EXISTS idx_session_reminders_failed
    ON session_reminders (updated_at) WHERE status = 'failed';

DROP TRIGGER IF EXISTS trg_session_reminders_updated_at ON session_reminders;
CREATE TRIGGER trg_session_reminders_updated_at BEFORE UPDATE ON session_reminders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION schedule_booking_reminders()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
BEGIN
    IF NEW.status = 'confirmed' THEN
        INSERT INTO session_reminders (booking_id, recipient_id, channel, reminder_type, scheduled_for)
        SELECT NEW.id, r.recipient_id, 'email', t.reminder_type, NEW.starts_at - t.lead_time
        FROM (VALUES (NEW.beneficiary_id), (NEW.consultant_id)) AS r (recipient_id)
        CROSS JOIN (VALUES ('24h_before', interval '24 hours'),
                           ('1h_before', interval '1 hour')) AS t (reminder_type, lead_time)
        WHERE r.recipient_id IS NOT NULL
          AND NEW.starts_at - t.lead_time > now()
        ON CONFLICT (booking_id, recipient_id, channel, reminder_type) DO UPDATE
            SET scheduled_for = EXCLUDED.scheduled_for, status = 'pending'
            WHERE session_reminders.status IN ('pending', 'cancelled');
    ELSIF NEW.status IN ('cancelled', 'completed', 'no_show') THEN
        UPDATE session_reminders SET status = 'cancelled'
        WHERE booking_id = NEW.id AND status = 'pending';
        IF NEW.status = 'cancelled' THEN
            INSERT INTO session_reminders (booking_id, recipient_id, channel, reminder_type, scheduled_for)
            SELECT NEW.id, r.recipient_id, 'email', 'cancellation', now()
            FROM (VALUES (NEW.beneficiary_id), (NEW.consultant_id)) AS r (recipient_id)
            WHERE r.recipient_id IS NOT NULL
            ON CONFLICT (booking_id, recipient_id, channel, reminder_type) DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_session_bookings_schedule_reminders ON session_bookings;
CREATE TRIGGER trg_session_bookings_schedule_reminders
    AFTER INSERT OR UPDATE OF status, starts_at ON session_bookings
    FOR EACH ROW EXECUTE FUNCTION schedule_booking_reminders();
