-- Rollback of migration 001: drops the nine core tables and set_updated_at().
--
-- Tables are dropped children first (their triggers go with them), without
-- CASCADE: if a later migration is still applied this fails loudly instead of
-- silently dropping its objects.

DROP TABLE IF EXISTS audit_logs;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS documents;
DROP TABLE IF EXISTS recommendations;
DROP TABLE IF EXISTS competencies;
DROP TABLE IF EXISTS bilans;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS organizations;

DROP FUNCTION IF EXISTS set_updated_at();
