-- Migration 009: organization_qualiopi_status
--
-- Tracks, per organization, the compliance status of each of the 32 Qualiopi
-- indicators seeded by 008, as prepared for the initial, surveillance and
-- renewal audits (non-conformité mineure / majeure).
-- Functions:
--   initialize_qualiopi_status(org)  creates the missing rows of an organization
--                                    (indicators that do not apply to a bilan
--                                    start as 'not_applicable');
--   qualiopi_compliance_rate(org)    % of applicable indicators that comply.
-- A trigger stamps last_reviewed_at whenever the status changes.

CREATE TABLE IF NOT EXISTS organization_qualiopi_status (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    indicator_id        uuid        NOT NULL REFERENCES qualiopi_indicators (id) ON DELETE RESTRICT,
    status              varchar(20) NOT NULL DEFAULT 'not_started'
        CHECK (status IN ('not_started', 'in_progress', 'compliant', 'non_compliant',
                          'not_applicable')),
    nonconformity_level varchar(10) CHECK (nonconformity_level IN ('minor', 'major')),
    responsible_user_id uuid        REFERENCES users (id) ON DELETE SET NULL,
    notes               text,
    last_reviewed_at    timestamptz,
    next_review_due     date,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organization_qualiopi_status_org_indicator_key UNIQUE (organization_id, indicator_id),
    CONSTRAINT organization_qualiopi_status_nonconformity_check
        CHECK (nonconformity_level IS NULL OR status = 'non_compliant')
);

COMMENT ON TABLE organization_qualiopi_status IS
    'Compliance of an organization with each Qualiopi indicator (one row per organization and indicator).';

CREATE INDEX IF NOT EXISTS idx_org_qualiopi_status_indicator_id
    ON organization_qualiopi_status (indicator_id);
CREATE INDEX IF NOT EXISTS idx_org_qualiopi_status_status
    ON organization_qualiopi_status (organization_id, status);
CREATE INDEX IF NOT EXISTS idx_org_qualiopi_status_responsible
    ON organization_qualiopi_status (responsible_user_id);
CREATE INDEX IF NOT EXISTS idx_org_qualiopi_status_next_review
    ON organization_qualiopi_status (next_review_due) WHERE next_review_due IS NOT NULL;

CREATE OR REPLACE FUNCTION organization_qualiopi_status_review()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.last_reviewed_at := now();
        IF NEW.status <> 'non_compliant' THEN
            NEW.nonconformity_level := NULL;
        END IF;
    END IF;
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_org_qualiopi_status_review ON organization_qualiopi_status;
CREATE TRIGGER trg_org_qualiopi_status_review BEFORE UPDATE OF status ON organization_qualiopi_status
    FOR EACH ROW EXECUTE FUNCTION organization_qualiopi_status_review();

DROP TRIGGER IF EXISTS trg_org_qualiopi_status_updated_at ON organization_qualiopi_status;
CREATE TRIGGER trg_org_qualiopi_status_updated_at BEFORE UPDATE ON organization_qualiopi_status
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION initialize_qualiopi_status(p_organization_id uuid)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_count integer;
BEGIN
    INSERT INTO organization_qualiopi_status (organization_id, indicator_id, status)
    SELECT p_organization_id, i.id,
           CASE WHEN i.applies_to_bilan THEN 'not_started' ELSE 'not_applicable' END
    FROM qualiopi_indicators i
    ON CONFLICT (organization_id, indicator_id) DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$fn$;

CREATE OR REPLACE FUNCTION qualiopi_compliance_rate(p_organization_id uuid)
RETURNS numeric
LANGUAGE sql STABLE
AS $fn$
    SELECT round(100.0 * count(*) FILTER (WHERE s.status = 'compliant')
                 / nullif(count(*) FILTER (WHERE s.status <> 'not_applicable'), 0), 2)
    FROM organization_qualiopi_status s
    WHERE s.organization_id = p_organization_id;
$fn$;

COMMENT ON FUNCTION initialize_qualiopi_status(uuid) IS
    'Creates the missing indicator rows of an organization; returns the number created.';
COMMENT ON FUNCTION qualiopi_compliance_rate(uuid) IS
    'Percentage of applicable Qualiopi indicators marked compliant (NULL when none is tracked).';
