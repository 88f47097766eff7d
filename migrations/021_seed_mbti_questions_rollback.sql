-- Rollback of migration 021: drops mbti_questions with its 48 seeded questions
-- (indexes and trigger go with it).

DROP TABLE IF EXISTS mbti_questions;
