-- Migration 001: initial schema (core tables)
--
-- Creates the nine core tables of BilanCompetence.AI:
--   organizations   training/bilan providers (centres de bilan de compétences)
--   users           beneficiaries, consultants and organization admins
--   bilans          one bilan de compétences (max 24 h, three phases) per beneficiary
--   competencies    competencies identified during a bilan
--   recommendations jobs, trainings, certifications proposed at the end of a bilan
--   documents       documents attached to a bilan (convention, synthèse, émargement...)
--   messages        direct messages between users
--   sessions        the appointments (entretiens) of a bilan
--   audit_logs      append-only audit trail (filled by triggers from 002)
-- and the shared updated_at trigger function used by every later migration.
--
-- Indexes on foreign keys, row level security and most business constraints
-- are added by 002 (security & standardization), as in the original history.
-- Everything is idempotent: IF NOT EXISTS, CREATE OR REPLACE, DROP ... IF EXISTS.

-- Shared trigger function: keeps updated_at current on every UPDATE.
CREATE OR REPLACE FUNCTION set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$fn$;

COMMENT ON FUNCTION set_updated_at() IS
    'BEFORE UPDATE trigger function shared by all tables: sets updated_at to now().';

CREATE TABLE IF NOT EXISTS organizations (
    id                uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    name              varchar(255) NOT NULL,
    slug              varchar(100) NOT NULL UNIQUE,
    siret             char(14),
    nda_number        varchar(20),
    address_line1     varchar(255),
    address_line2     varchar(255),
    postal_code       varchar(10),
    city              varchar(100),
    country           char(2)      NOT NULL DEFAULT 'FR',
    phone             varchar(20),
    email             varchar(255),
    website           text,
    subscription_plan varchar(20)  NOT NULL DEFAULT 'starter'
        CHECK (subscription_plan IN ('starter', 'professional', 'enterprise')),
    is_active         boolean      NOT NULL DEFAULT true,
    settings          jsonb        NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT organizations_slug_format_check CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$')
);

COMMENT ON TABLE organizations IS 'Providers delivering bilans de compétences (tenants).';
COMMENT ON COLUMN organizations.nda_number IS 'Numéro de déclaration d''activité (NDA) of the provider.';

CREATE TABLE IF NOT EXISTS users (
    id                uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    email             varchar(255) NOT NULL UNIQUE,
    password_hash     varchar(255) NOT NULL,
    first_name        varchar(100) NOT NULL,
    last_name         varchar(100) NOT NULL,
    phone             varchar(20),
    role              varchar(20)  NOT NULL DEFAULT 'beneficiary'
        CHECK (role IN ('beneficiary', 'consultant', 'admin')),
    organization_id   uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    is_active         boolean      NOT NULL DEFAULT true,
    email_verified_at timestamptz,
    last_login_at     timestamptz,
    locale            varchar(10)  NOT NULL DEFAULT 'fr',
    avatar_url        text,
    deleted_at        timestamptz,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now()
);

COMMENT ON TABLE users IS 'All accounts: beneficiaries, consultants and organization admins.';
COMMENT ON COLUMN users.deleted_at IS 'Soft deletion (RGPD erasure requests are processed asynchronously).';

CREATE TABLE IF NOT EXISTS bilans (
    id                uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    beneficiary_id    uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    consultant_id     uuid         REFERENCES users (id) ON DELETE SET NULL,
    organization_id   uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    title             varchar(255) NOT NULL DEFAULT 'Bilan de compétences',
    status            varchar(20)  NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'preliminary', 'investigation', 'conclusion',
                          'completed', 'cancelled')),
    funding_source    varchar(20)
        CHECK (funding_source IN ('cpf', 'employer', 'france_travail', 'opco',
                                  'personal', 'other')),
    start_date        date,
    expected_end_date date,
    actual_end_date   date,
    duration_hours    numeric(4, 1),
    objectives        text,
    summary           text,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now()
);

COMMENT ON TABLE bilans IS
    'A bilan de compétences: preliminary, investigation and conclusion phases (Code du travail L6313-4).';

CREATE TABLE IF NOT EXISTS competencies (
    id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    bilan_id    uuid         NOT NULL REFERENCES bilans (id) ON DELETE CASCADE,
    name        varchar(255) NOT NULL,
    category    varchar(20)  NOT NULL DEFAULT 'technical'
        CHECK (category IN ('technical', 'transversal', 'behavioral', 'language',
                            'digital', 'management')),
    level       smallint     CHECK (level BETWEEN 1 AND 5),
    source      varchar(20)  NOT NULL DEFAULT 'self_assessment'
        CHECK (source IN ('self_assessment', 'consultant', 'ai', 'test')),
    rome_code   varchar(5)   CHECK (rome_code ~ '^[A-N][0-9]{4}$'),
    evidence    text,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now()
);

COMMENT ON COLUMN competencies.rome_code IS 'Code ROME (France Travail job repository), e.g. M1805.';

CREATE TABLE IF NOT EXISTS recommendations (
    id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    bilan_id    uuid         NOT NULL REFERENCES bilans (id) ON DELETE CASCADE,
    type        varchar(20)  NOT NULL
        CHECK (type IN ('job', 'training', 'certification', 'action', 'resource')),
    title       varchar(255) NOT NULL,
    description text,
    rome_code   varchar(5)   CHECK (rome_code ~ '^[A-N][0-9]{4}$'),
    priority    smallint     NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    status      varchar(20)  NOT NULL DEFAULT 'proposed'
        CHECK (status IN ('proposed', 'accepted', 'rejected', 'in_progress', 'done')),
    created_by  uuid         REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS documents (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    bilan_id        uuid         REFERENCES bilans (id) ON DELETE CASCADE,
    uploaded_by     uuid         REFERENCES users (id) ON DELETE SET NULL,
    document_type   varchar(30)  NOT NULL DEFAULT 'other'
        CHECK (document_type IN ('convention', 'synthesis', 'attendance_sheet', 'cv',
                                 'certificate', 'action_plan', 'invoice', 'other')),
    title           varchar(255) NOT NULL,
    file_url        text         NOT NULL,
    mime_type       varchar(100),
    file_size_bytes bigint       CHECK (file_size_bytes >= 0),
    is_signed       boolean      NOT NULL DEFAULT false,
    signed_at       timestamptz,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT documents_signed_check CHECK (NOT is_signed OR signed_at IS NOT NULL)
);

COMMENT ON COLUMN documents.user_id IS 'The beneficiary the document concerns (owner for access control).';

CREATE TABLE IF NOT EXISTS messages (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    sender_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bilan_id     uuid        REFERENCES bilans (id) ON DELETE SET NULL,
    content      text        NOT NULL CHECK (length(btrim(content)) > 0),
    read_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_not_self_check CHECK (sender_id <> recipient_id)
);

CREATE TABLE IF NOT EXISTS sessions (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    bilan_id             uuid        NOT NULL REFERENCES bilans (id) ON DELETE CASCADE,
    consultant_id        uuid        REFERENCES users (id) ON DELETE SET NULL,
    session_type         varchar(20) NOT NULL DEFAULT 'investigation'
        CHECK (session_type IN ('preliminary', 'investigation', 'conclusion', 'follow_up')),
    scheduled_at         timestamptz NOT NULL,
    duration_minutes     integer     NOT NULL DEFAULT 60
        CHECK (duration_minutes BETWEEN 15 AND 480),
    location_type        varchar(20) NOT NULL DEFAULT 'in_person'
        CHECK (location_type IN ('in_person', 'video', 'phone')),
    location             text,
    status               varchar(20) NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'completed', 'cancelled', 'no_show')),
    attendance_confirmed boolean     NOT NULL DEFAULT false,
    notes                text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE sessions IS
    'Appointments of a bilan (entretiens); attendance_confirmed backs the Qualiopi émargement.';

CREATE TABLE IF NOT EXISTS audit_logs (
    id              bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid         REFERENCES users (id) ON DELETE SET NULL,
    organization_id uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    action          varchar(50)  NOT NULL,
    entity_type     varchar(100) NOT NULL,
    entity_id       text,
    old_values      jsonb,
    new_values      jsonb,
    ip_address      inet,
    user_agent      text,
    created_at      timestamptz  NOT NULL DEFAULT now()
);

COMMENT ON TABLE audit_logs IS
    'Append-only audit trail; rows are only ever anonymised (user/org set to NULL), never edited.';

-- updated_at maintenance
DROP TRIGGER IF EXISTS trg_organizations_updated_at ON organizations;
CREATE TRIGGER trg_organizations_updated_at BEFORE UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_users_updated_at ON users;
CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_bilans_updated_at ON bilans;
CREATE TRIGGER trg_bilans_updated_at BEFORE UPDATE ON bilans
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_competencies_updated_at ON competencies;
CREATE TRIGGER trg_competencies_updated_at BEFORE UPDATE ON competencies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_recommendations_updated_at ON recommendations;
CREATE TRIGGER trg_recommendations_updated_at BEFORE UPDATE ON recommendations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_documents_updated_at ON documents;
CREATE TRIGGER trg_documents_updated_at BEFORE UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_messages_updated_at ON messages;
CREATE TRIGGER trg_messages_updated_at BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_sessions_updated_at ON sessions;
CREATE TRIGGER trg_sessions_updated_at BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
