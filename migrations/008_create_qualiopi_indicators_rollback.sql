-- Rollback of migration 008: drops qualiopi_indicators and its seed (the 32
-- indicators), indexes and trigger.

DROP TABLE IF EXISTS qualiopi_indicators;
