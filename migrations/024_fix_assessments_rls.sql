-- Migration 024: fix the row level security of assessments
--
-- The policies of 018 (assessments_owner_select / assessments_owner_write)
-- only let the beneficiary and the assigned consultant see an assessment:
-- organization admins saw nothing, consultants could not follow the
-- assessments of their beneficiaries assigned to a colleague, nor those of
-- their organization. 024 replaces them with the rules every other table
-- follows (002): app_can_read / app_can_write on the beneficiary and the
-- organization, plus the assigned consultant.
--
-- depends: 018, 023

DROP POLICY IF EXISTS assessments_owner_select ON assessments;
DROP POLICY IF EXISTS assessments_owner_write ON assessments;

DROP POLICY IF EXISTS assessments_select ON assessments;
CREATE POLICY assessments_select ON assessments FOR SELECT
    USING (consultant_id = app_current_user_id()
           OR app_can_read(beneficiary_id, organization_id));

DROP POLICY IF EXISTS assessments_write ON assessments;
CREATE POLICY assessments_write ON assessments FOR ALL
    USING (consultant_id = app_current_user_id()
           OR app_can_write(beneficiary_id, organization_id))
    WITH CHECK (consultant_id = app_current_user_id()
           OR app_can_write(beneficiary_id, organization_id));
