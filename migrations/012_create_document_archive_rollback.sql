-- Rollback of migration 012: drops its functions, document_access_log and
-- document_archive (indexes and triggers go with the tables).

DROP FUNCTION IF EXISTS purge_expired_document_archive();
DROP FUNCTION IF EXISTS log_document_access(uuid, varchar);
DROP TABLE IF EXISTS document_access_log;
DROP TABLE IF EXISTS document_archive;
