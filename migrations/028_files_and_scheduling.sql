-- Migration 028: files & scheduling
--
-- 1. conversations: message threads between a beneficiary and a consultant
--    (optionally about one bilan); messages.conversation_id links the messages
--    of 001 to their thread and a trigger keeps conversations.last_message_at
--    current. Row level security: participants plus the rules of 002.
--    user_preferences (027) gets chat_notifications: how a user wants to hear
--    about new messages ('instant', 'daily_digest' or 'off').
-- 2. files (020): link to an assessment, SHA-256 checksum, soft deletion.
-- 3. assessment_documents: the documents attached to an assessment (CV,
--    diplomas, reports...), joining files (020) and assessments (018). The guide
--    lists this table in the Assessments category without a migration; 028 is
--    the first point where both tables it joins exist.
-- 4. scheduling (014/015): time zone and video link on availability slots and
--    bookings (sessions are booked across time zones, Europe/Paris by default).
--
-- depends: 014, 015, 020, 027

-- 1. conversations
CREATE TABLE IF NOT EXISTS conversations (
    id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    beneficiary_id  uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    consultant_id   uuid         REFERENCES users (id) ON DELETE SET NULL,
    organization_id uuid         REFERENCES organizations (id) ON DELETE SET NULL,
    bilan_id        uuid         REFERENCES bilans (id) ON DELETE SET NULL,
    subject         varchar(255),
    status          varchar(20)  NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'archived', 'closed')),
    last_message_at timestamptz,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT conversations_participants_check CHECK (consultant_id <> beneficiary_id)
);

CREATE INDEX IF NOT EXISTS idx_conversations_beneficiary_id
    ON conversations (beneficiary_id, last_message_at DESC);
CREATE INDEX IF NOT EXISTS idx_conversations_consultant_id
    ON conversations (consultant_id, last_message_at DESC);
CREATE INDEX IF NOT EXISTS idx_conversations_organization_id ON conversations (organization_id);
CREATE INDEX IF NOT EXISTS idx_conversations_bilan_id ON conversations (bilan_id);

DROP TRIGGER IF EXISTS trg_conversations_updated_at ON conversations;
CREATE TRIGGER trg_conversations_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

ALTER TABLE messages ADD COLUMN IF NOT EXISTS conversation_id uuid;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'messages'::regclass
                     AND conname = 'messages_conversation_id_fkey') THEN
        ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey
            FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE;
    END IF;
END;
$do$;
CREATE INDEX IF NOT EXISTS idx_messages_conversation_id ON messages (conversation_id, created_at);

CREATE OR REPLACE FUNCTION conversations_touch_last_message()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
BEGIN
    IF NEW.conversation_id IS NOT NULL THEN
        UPDATE conversations
        SET last_message_at = greatest(coalesce(last_message_at, NEW.created_at), NEW.created_at),
            status = CASE WHEN status = 'archived' THEN 'open' ELSE status END
        WHERE id = NEW.conversation_id;
    END IF;
    RETURN NULL;
END;
$fn$;

DROP TRIGGER IF EXISTS trg_messages_touch_conversation ON messages;
CREATE TRIGGER trg_messages_touch_conversation AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION conversations_touch_last_message();

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS conversations_select ON conversations;
CREATE POLICY conversations_select ON conversations FOR SELECT
    USING (consultant_id = app_current_user_id()
           OR app_can_read(beneficiary_id, organization_id));
DROP POLICY IF EXISTS conversations_write ON conversations;
CREATE POLICY conversations_write ON conversations FOR ALL
    USING (consultant_id = app_current_user_id()
           OR app_can_write(beneficiary_id, organization_id))
    WITH CHECK (consultant_id = app_current_user_id()
           OR app_can_write(beneficiary_id, organization_id));

-- Chat notification preference (user_preferences of 027).
ALTER TABLE user_preferences
    ADD COLUMN IF NOT EXISTS chat_notifications varchar(15) NOT NULL DEFAULT 'instant';
ALTER TABLE user_preferences
    DROP CONSTRAINT IF EXISTS user_preferences_chat_notifications_check,
    ADD CONSTRAINT user_preferences_chat_notifications_check
        CHECK (chat_notifications IN ('instant', 'daily_digest', 'off'));

COMMENT ON COLUMN user_preferences.chat_notifications IS
    'New messages of a conversation: notified at once, in a daily digest, or not at all.';

-- 2. files
ALTER TABLE files ADD COLUMN IF NOT EXISTS assessment_id uuid;
ALTER TABLE files ADD COLUMN IF NOT EXISTS checksum_sha256 char(64);
ALTER TABLE files ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'files'::regclass AND conname = 'files_assessment_id_fkey') THEN
        ALTER TABLE files ADD CONSTRAINT files_assessment_id_fkey
            FOREIGN KEY (assessment_id) REFERENCES assessments (id) ON DELETE SET NULL;
    END IF;
END;
$do$;
ALTER TABLE files
    DROP CONSTRAINT IF EXISTS files_checksum_sha256_check,
    ADD CONSTRAINT files_checksum_sha256_check CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$');
CREATE INDEX IF NOT EXISTS idx_files_assessment_id ON files (assessment_id);
CREATE INDEX IF NOT EXISTS idx_files_checksum ON files (user_id, checksum_sha256)
    WHERE checksum_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_files_deleted_at ON files (deleted_at) WHERE deleted_at IS NOT NULL;

-- 3. assessment_documents
CREATE TABLE IF NOT EXISTS assessment_documents (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    assessment_id uuid        NOT NULL REFERENCES assessments (id) ON DELETE CASCADE,
    file_id       uuid        NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    document_type varchar(30) NOT NULL DEFAULT 'other'
        CHECK (document_type IN ('cv', 'cover_letter', 'diploma', 'certificate', 'report',
                                 'synthesis', 'other')),
    description   text,
    uploaded_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assessment_documents_assessment_file_key UNIQUE (assessment_id, file_id)
);

CREATE INDEX IF NOT EXISTS idx_assessment_documents_file_id ON assessment_documents (file_id);
CREATE INDEX IF NOT EXISTS idx_assessment_documents_uploaded_by ON assessment_documents (uploaded_by);

DROP TRIGGER IF EXISTS trg_assessment_documents_updated_at ON assessment_documents;
CREATE TRIGGER trg_assessment_documents_updated_at BEFORE UPDATE ON assessment_documents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- 4. scheduling
ALTER TABLE availability_slots ADD COLUMN IF NOT EXISTS timezone varchar(64) NOT NULL DEFAULT 'Europe/Paris';
ALTER TABLE availability_slots ADD COLUMN IF NOT EXISTS meeting_url text;
ALTER TABLE session_bookings ADD COLUMN IF NOT EXISTS timezone varchar(64) NOT NULL DEFAULT 'Europe/Paris';
ALTER TABLE session_bookings ADD COLUMN IF NOT EXISTS meeting_url text;
ALTER TABLE availability_slots
    DROP CONSTRAINT IF EXISTS availability_slots_meeting_url_check,
    ADD CONSTRAINT availability_slots_meeting_url_check CHECK (meeting_url ~ '^https://');
ALTER TABLE session_bookings
    DROP CONSTRAINT IF EXISTS session_bookings_meeting_url_check,
    ADD CONSTRAINT session_bookings_meeting_url_check CHECK (meeting_url ~ '^https://');
