-- Rollback of migration 029: drops the migration_history view, the only object
-- 029 owns.
--
-- schema_migrations and migration_applied(), record_migration(),
-- record_migration_failure(), get_migration_status() are deliberately NOT
-- dropped (unlike the guide's example): the bilantools engine creates them
-- before migration 001 and uses them to record this very rollback and every
-- later operation; dropping them would destroy the migration history and break
-- the engine. They belong to the tracking layer, not to migration 029, which
-- only re-declares them.

DROP VIEW IF EXISTS migration_history;
