-- Rollback of migration 007: drops the two question banks it created (with
-- their seed rows, indexes and triggers).

DROP TABLE IF EXISTS interests_questions;
DROP TABLE IF EXISTS values_questions;
