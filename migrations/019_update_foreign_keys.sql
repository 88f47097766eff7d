-- Migration 019: move the assessment foreign keys from bilans to assessments
--
-- assessment_competencies (005) and assessment_drafts (006) were created when
-- the bilan was the assessment, so their assessment_id references bilans(id).
-- Now that assessments exists (018) they must reference assessments(id).
--
-- Existing rows point at bilans. To keep them, every bilan they reference gets
-- an assessments row with the same id (type 'comprehensive', status mapped
-- from the bilan), tagged metadata.backfilled_by = '019' so the rollback can
-- remove exactly these rows. Then each foreign key is swapped, keeping its
-- name and its ON DELETE CASCADE. Idempotent: the backfill skips existing ids
-- and each swap only happens while the key still references bilans.
--
-- depends: 005, 006, 018

INSERT INTO assessments (id, beneficiary_id, consultant_id, organization_id, bilan_id,
                         assessment_type, title, status, started_at, submitted_at,
                         completed_at, metadata, created_at)
SELECT b.id, b.beneficiary_id, b.consultant_id, b.organization_id, b.id,
       'comprehensive', b.title,
       CASE b.status
           WHEN 'draft' THEN 'draft'
           WHEN 'completed' THEN 'completed'
           WHEN 'cancelled' THEN 'archived'
           ELSE 'in_progress'
       END,
       CASE WHEN b.status <> 'draft' THEN coalesce(b.start_date::timestamptz, b.created_at) END,
       CASE WHEN b.status = 'completed' THEN coalesce(b.actual_end_date::timestamptz, b.updated_at) END,
       CASE WHEN b.status = 'completed' THEN coalesce(b.actual_end_date::timestamptz, b.updated_at) END,
       jsonb_build_object('backfilled_by', '019'),
       b.created_at
FROM bilans b
WHERE b.id IN (SELECT c.assessment_id FROM assessment_competencies c
               UNION
               SELECT d.assessment_id FROM assessment_drafts d)
ON CONFLICT (id) DO NOTHING;

DO $do$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['assessment_competencies', 'assessment_drafts'] LOOP
        IF EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = v_table::regclass
                     AND conname = v_table || '_assessment_id_fkey'
                     AND confrelid = 'bilans'::regclass) THEN
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I',
                           v_table, v_table || '_assessment_id_fkey');
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = v_table::regclass
                         AND conname = v_table || '_assessment_id_fkey') THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I FOREIGN KEY (assessment_id) '
                           'REFERENCES assessments (id) ON DELETE CASCADE',
                           v_table, v_table || '_assessment_id_fkey');
        END IF;
    END LOOP;
END;
$do$;
