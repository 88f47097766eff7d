-- Rollback of migration 005: drops assessment_competencies (its indexes and
-- trigger go with it).

DROP TABLE IF EXISTS assessment_competencies;
