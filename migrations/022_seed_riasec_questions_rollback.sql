-- Rollback of migration 022: drops riasec_questions with its 48 seeded
-- questions (indexes and trigger go with it).

DROP TABLE IF EXISTS riasec_questions;
