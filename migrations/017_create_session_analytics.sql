-- Migration 017: session_analytics
--
-- Aggregated scheduling figures per organization and period, per consultant and
-- for the whole organization (consultant_id NULL): bookings, completed,
-- cancelled and no-show sessions, delivered hours, slot utilisation. They feed
-- the dashboards and the Qualiopi results indicators (criterion 1, indicator 2).
-- refresh_session_analytics(org, start, end) recomputes a period (upsert on the
-- NULLS NOT DISTINCT key, PostgreSQL 15+).
--
-- The reminders of 016 are measured too: among the sessions with a known
-- outcome (completed or no-show), reminded_sessions counts those whose
-- beneficiary was actually sent a "24 h before" or "1 h before" reminder
-- (session_reminders.status = 'sent', any channel), and the no-show rate is
-- computed separately with and without such a reminder. This is the evidence
-- of the absence follow-up procedure (Qualiopi indicator 12, prevention of
-- ruptures) and tells whether the reminder policy works.

CREATE TABLE IF NOT EXISTS session_analytics (
    id                 uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id    uuid         NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    consultant_id      uuid         REFERENCES users (id) ON DELETE CASCADE,
    period_start       date         NOT NULL,
    period_end         date         NOT NULL,
    total_slots        integer      NOT NULL DEFAULT 0 CHECK (total_slots >= 0),
    total_bookings     integer      NOT NULL DEFAULT 0 CHECK (total_bookings >= 0),
    completed_sessions integer      NOT NULL DEFAULT 0 CHECK (completed_sessions >= 0),
    cancelled_sessions integer      NOT NULL DEFAULT 0 CHECK (cancelled_sessions >= 0),
    no_show_sessions   integer      NOT NULL DEFAULT 0 CHECK (no_show_sessions >= 0),
    reminded_sessions  integer      NOT NULL DEFAULT 0 CHECK (reminded_sessions >= 0),
    no_show_rate_reminded     numeric(5,2) CHECK (no_show_rate_reminded BETWEEN 0 AND 100),
    no_show_rate_not_reminded numeric(5,2) CHECK (no_show_rate_not_reminded BETWEEN 0 AND 100),
    delivered_hours    numeric(8,2) NOT NULL DEFAULT 0 CHECK (delivered_hours >= 0),
    utilization_rate   numeric(5,2) CHECK (utilization_rate BETWEEN 0 AND 100),
    cancellation_rate  numeric(5,2) CHECK (cancellation_rate BETWEEN 0 AND 100),
    computed_at        timestamptz  NOT NULL DEFAULT now(),
    created_at         timestamptz  NOT NULL DEFAULT now(),
    updated_at         timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT session_analytics_period_check CHECK (period_end >= period_start),
    CONSTRAINT session_analytics_reminded_check
        CHECK (reminded_sessions <= completed_sessions + no_show_sessions),
    CONSTRAINT session_analytics_period_key
        UNIQUE NULLS NOT DISTINCT (organization_id, consultant_id, period_start, period_end)
);

CREATE INDEX IF NOT EXISTS idx_session_analytics_consultant_id
    ON session_analytics (consultant_id, period_start);
CREATE INDEX IF NOT EXISTS idx_session_analytics_period
    ON session_analytics (period_start, period_end);

DROP TRIGGER IF EXISTS trg_session_analytics_updated_at ON session_analytics;
CREATE TRIGGER trg_session_analytics_updated_at BEFORE UPDATE ON session_analytics
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION refresh_session_analytics(p_organization_id uuid,
                                                     p_period_start date,
                                                     p_period_end date)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_count integer;
BEGIN
    IF p_period_end < p_period_start THEN
        RAISE EXCEPTION 'period end % is before period start %', p_period_end, p_period_start
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH bookings AS (
        SELECT CASE WHEN grouping(b.consultant_id) = 1 THEN NULL ELSE b.consultant_id END AS consultant_id,
               grouping(b.consultant_id) = 1 AS is_total,
               count(*) AS total_bookings,
               count(*) FILTER (WHERE b.status = 'completed') AS completed,
               count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE b.status = 'no_show') AS no_show,
               coalesce(sum(extract(epoch FROM b.ends_at - b.starts_at) / 3600)
                        FILTER (WHERE b.status = 'completed'), 0) AS hours,
               count(*) FILTER (WHERE b.status IN ('completed', 'no_show') AND r.reminded) AS reminded,
               count(*) FILTER (WHERE b.status = 'no_show' AND r.reminded) AS no_show_reminded,
               count(*) FILTER (WHERE b.status IN ('completed', 'no_show') AND NOT r.reminded)
                   AS not_reminded,
               count(*) FILTER (WHERE b.status = 'no_show' AND NOT r.reminded) AS no_show_not_reminded
        FROM session_bookings b
        -- was the beneficiary sent a reminder before the session (016)?
        CROSS JOIN LATERAL (
            SELECT EXISTS (
                SELECT 1 FROM session_reminders sr
                WHERE sr.booking_id = b.id
                  AND sr.recipient_id = b.beneficiary_id
                  AND sr.reminder_type IN ('24h_before', '1h_before')
                  AND sr.status = 'sent') AS reminded
        ) r
        WHERE b.organization_id = p_organization_id
          AND b.starts_at >= p_period_start
          AND b.starts_at < p_period_end + 1
        GROUP BY GROUPING SETS ((b.consultant_id), ())
    ),
    slots AS (
        SELECT CASE WHEN grouping(s.consultant_id) = 1 THEN NULL ELSE s.consultant_id END AS consultant_id,
               grouping(s.consultant_id) = 1 AS is_total,
               count(*) AS total_slots,
               sum(s.capacity * extract(epoch FROM s.ends_at - s.starts_at) / 3600) AS offered_hours,
               sum(s.booked_count * extract(epoch FROM s.ends_at - s.starts_at) / 3600) AS booked_hours
        FROM availability_slots s
        WHERE s.organization_id = p_organization_id
          AND s.status <> 'cancelled'
          AND s.starts_at >= p_period_start
          AND s.starts_at < p_period_end + 1
        GROUP BY GROUPING SETS ((s.consultant_id), ())
    ),
    merged AS (
        SELECT coalesce(b.consultant_id, s.consultant_id) AS consultant_id,
               coalesce(s.total_slots, 0) AS total_slots,
               coalesce(b.total_bookings, 0) AS total_bookings,
               coalesce(b.completed, 0) AS completed,
               coalesce(b.cancelled, 0) AS cancelled,
               coalesce(b.no_show, 0) AS no_show,
               coalesce(b.hours, 0) AS hours,
               coalesce(b.reminded, 0) AS reminded,
               coalesce(b.no_show_reminded, 0) AS no_show_reminded,
               coalesce(b.not_reminded, 0) AS not_reminded,
               coalesce(b.no_show_not_reminded, 0) AS no_show_not_reminded,
               s.offered_hours, s.booked_hours
        FROM bookings b
        FULL JOIN slots s
          ON s.is_total = b.is_total AND s.consultant_id IS NOT DISTINCT FROM b.consultant_id
        -- bookings without consultant only count in the organization total
        WHERE coalesce(b.is_total, s.is_total)
           OR coalesce(b.consultant_id, s.consultant_id) IS NOT NULL
    )
    INSERT INTO session_analytics AS a (organization_id, consultant_id, period_start, period_end,
                                        total_slots, total_bookings, completed_sessions,
                                        cancelled_sessions, no_show_sessions, delivered_hours,
                                        utilization_rate, cancellation_rate, reminded_sessions,
                                        no_show_rate_reminded, no_show_rate_not_reminded,
                                        computed_at)
    SELECT p_organization_id, m.consultant_id, p_period_start, p_period_end,
           m.total_slots, m.total_bookings, m.completed, m.cancelled, m.no_show,
           round(m.hours, 2),
           least(100, round(100 * m.booked_hours / nullif(m.offered_hours, 0), 2)),
           round(100.0 * m.cancelled / nullif(m.total_bookings, 0), 2),
           m.reminded,
           round(100.0 * m.no_show_reminded / nullif(m.reminded, 0), 2),
           round(100.0 * m.no_show_not_reminded / nullif(m.not_reminded, 0), 2),
           now()
    FROM merged m
    ON CONFLICT (organization_id, consultant_id, period_start, period_end) DO UPDATE SET
        total_slots = EXCLUDED.total_slots,
        total_bookings = EXCLUDED.total_bookings,
        completed_sessions = EXCLUDED.completed_sessions,
        cancelled_sessions = EXCLUDED.cancelled_sessions,
        no_show_sessions = EXCLUDED.no_show_sessions,
        delivered_hours = EXCLUDED.delivered_hours,
        utilization_rate = EXCLUDED.utilization_rate,
        cancellation_rate = EXCLUDED.cancellation_rate,
        reminded_sessions = EXCLUDED.reminded_sessions,
        no_show_rate_reminded = EXCLUDED.no_show_rate_reminded,
        no_show_rate_not_reminded = EXCLUDED.no_show_rate_not_reminded,
        computed_at = EXCLUDED.computed_at;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$fn$;

COMMENT ON FUNCTION refresh_session_analytics(uuid, date, date) IS
    'Recomputes session_analytics of an organization for [start, end]; returns the rows written.';
