-- Migration 010: qualiopi_evidence
--
-- The proofs (éléments de preuve) an organization collects for each Qualiopi
-- indicator: procedures, records, documents, links. Evidence may be tied to a
-- bilan (e.g. an émargement sheet) and has a validity period; the function
-- qualiopi_evidence_expiring(org, days) lists evidence to renew before an audit.
--
-- Evidence is filed under the organization's status row of its indicator
-- (organization_qualiopi_status, 009): the foreign key (organization_id,
-- indicator_id) guarantees that an organization only files proofs for
-- indicators it tracks (initialize_qualiopi_status() creates the rows), and a
-- status row that still has evidence cannot be deleted on its own (deleting
-- the organization removes both).

CREATE TABLE IF NOT EXISTS qualiopi_evidence (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid         NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    indicator_id    uuid         NOT NULL REFERENCES qualiopi_indicators (id) ON DELETE RESTRICT,
    bilan_id        uuid         REFERENCES bilans (id) ON DELETE SET NULL,
    title           varchar(255) NOT NULL CHECK (length(btrim(title)) > 0),
    description     text,
    evidence_type   varchar(20)  NOT NULL DEFAULT 'document'
        CHECK (evidence_type IN ('document', 'procedure', 'record', 'survey', 'screenshot',
                                 'link', 'other')),
    file_url        text,
    external_url    text,
    mime_type       varchar(100),
    file_size_bytes bigint       CHECK (file_size_bytes >= 0),
    uploaded_by     uuid         REFERENCES users (id) ON DELETE SET NULL,
    valid_from      date         NOT NULL DEFAULT current_date,
    valid_until     date,
    is_archived     boolean      NOT NULL DEFAULT false,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT qualiopi_evidence_content_check
        CHECK (file_url IS NOT NULL OR external_url IS NOT NULL OR description IS NOT NULL),
    CONSTRAINT qualiopi_evidence_validity_check CHECK (valid_until >= valid_from),
    CONSTRAINT qualiopi_evidence_status_fkey FOREIGN KEY (organization_id, indicator_id)
        REFERENCES organization_qualiopi_status (organization_id, indicator_id)
);

CREATE INDEX IF NOT EXISTS idx_qualiopi_evidence_org_indicator
    ON qualiopi_evidence (organization_id, indicator_id);
CREATE INDEX IF NOT EXISTS idx_qualiopi_evidence_indicator_id ON qualiopi_evidence (indicator_id);
CREATE INDEX IF NOT EXISTS idx_qualiopi_evidence_bilan_id ON qualiopi_evidence (bilan_id);
CREATE INDEX IF NOT EXISTS idx_qualiopi_evidence_uploaded_by ON qualiopi_evidence (uploaded_by);
CREATE INDEX IF NOT EXISTS idx_qualiopi_evidence_valid_until
    ON qualiopi_evidence (organization_id, valid_until) WHERE NOT is_archived;

DROP TRIGGER IF EXISTS trg_qualiopi_evidence_updated_at ON qualiopi_evidence;
CREATE TRIGGER trg_qualiopi_evidence_updated_at BEFORE UPDATE ON qualiopi_evidence
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE OR REPLACE FUNCTION qualiopi_evidence_expiring(p_organization_id uuid,
                                                      p_within_days integer DEFAULT 30)
RETURNS SETOF qualiopi_evidence
LANGUAGE sql STABLE
AS $fn$
    SELECT e.*
    FROM qualiopi_evidence e
    WHERE e.organization_id = p_organization_id
      AND NOT e.is_archived
      AND e.valid_until IS NOT NULL
      AND e.valid_until <= current_date + p_within_days
    ORDER BY e.valid_until;
$fn$;
