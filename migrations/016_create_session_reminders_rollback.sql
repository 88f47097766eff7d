-- Rollback of migration 016: removes the reminder trigger from session_bookings,
-- its function and the session_reminders table.

DROP TRIGGER IF EXISTS trg_session_bookings_schedule_reminders ON session_bookings;
DROP FUNCTION IF EXISTS schedule_booking_reminders();
DROP TABLE IF EXISTS session_reminders;
