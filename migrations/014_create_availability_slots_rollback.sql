-- Rollback of migration 014: drops get_available_slots(), availability_slots
-- (indexes and triggers go with it) and the overlap trigger function.

DROP FUNCTION IF EXISTS get_available_slots(uuid, timestamptz, timestamptz);
DROP TABLE IF EXISTS availability_slots;
DROP FUNCTION IF EXISTS availability_slots_prevent_overlap();
