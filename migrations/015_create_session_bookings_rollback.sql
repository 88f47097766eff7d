-- Rollback of migration 015: drops session_bookings (its policies, indexes and
-- triggers go with it), then its trigger functions, and resets the booking
-- counters of the slots: without bookings (state of 014) every slot is empty.

DROP POLICY IF EXISTS session_bookings_write ON session_bookings;
DROP POLICY IF EXISTS session_bookings_select ON session_bookings;
DROP TABLE IF EXISTS session_bookings;
DROP FUNCTION IF EXISTS session_bookings_sync_slot();
DROP FUNCTION IF EXISTS session_bookings_validate_status();
DROP FUNCTION IF EXISTS session_bookings_fill_from_slot();

UPDATE availability_slots SET booked_count = 0 WHERE booked_count <> 0;
