-- Rollback of migration 019: points assessment_competencies.assessment_id and
-- assessment_drafts.assessment_id back to bilans(id).
--
-- Rows created after 019 for an assessment that is not a bilan cannot exist in
-- the 018 schema and are deleted (data loss, by construction). Then the
-- assessments rows backfilled by 019 (metadata.backfilled_by = '019') are
-- removed, with their answers (ON DELETE CASCADE).

DO $do$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['assessment_drafts', 'assessment_competencies'] LOOP
        IF EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = v_table::regclass
                     AND conname = v_table || '_assessment_id_fkey'
                     AND confrelid = 'assessments'::regclass) THEN
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I',
                           v_table, v_table || '_assessment_id_fkey');
        END IF;
        EXECUTE format('DELETE FROM %I t WHERE NOT EXISTS '
                       '(SELECT 1 FROM bilans b WHERE b.id = t.assessment_id)', v_table);
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = v_table::regclass
                         AND conname = v_table || '_assessment_id_fkey') THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I FOREIGN KEY (assessment_id) '
                           'REFERENCES bilans (id) ON DELETE CASCADE',
                           v_table, v_table || '_assessment_id_fkey');
        END IF;
    END LOOP;
END;
$do$;

DELETE FROM assessments WHERE metadata @> '{"backfilled_by": "019"}'::jsonb;
