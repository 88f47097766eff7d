-- Rollback of migration 017: drops refresh_session_analytics() and the
-- session_analytics table (indexes and trigger go with it).

DROP FUNCTION IF EXISTS refresh_session_analytics(uuid, date, date);
DROP TABLE IF EXISTS session_analytics;
