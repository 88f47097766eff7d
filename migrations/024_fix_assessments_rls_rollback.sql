-- Rollback of migration 024: drops the organization-aware assessments policies
-- and restores the owner-only policies of 018, unchanged.

DROP POLICY IF EXISTS assessments_write ON assessments;
DROP POLICY IF EXISTS assessments_select ON assessments;

DROP POLICY IF EXISTS assessments_owner_select ON assessments;
CREATE POLICY assessments_owner_select ON assessments FOR SELECT
    USING (beneficiary_id = app_current_user_id()
           OR consultant_id = app_current_user_id());
DROP POLICY IF EXISTS assessments_owner_write ON assessments;
CREATE POLICY assessments_owner_write ON assessments FOR ALL
    USING (beneficiary_id = app_current_user_id()
           OR consultant_id = app_current_user_id())
    WITH CHECK (beneficiary_id = app_current_user_id()
           OR consultant_id = app_current_user_id());
