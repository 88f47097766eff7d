-- Rollback of migration 028: undoes, in reverse order, the scheduling columns,
-- assessment_documents, the files columns, the chat notification preference,
-- the messages link and trigger, and the conversations table with its policies.

-- 4. scheduling
ALTER TABLE session_bookings DROP CONSTRAINT IF EXISTS session_bookings_meeting_url_check;
ALTER TABLE availability_slots DROP CONSTRAINT IF EXISTS availability_slots_meeting_url_check;
ALTER TABLE session_bookings DROP COLUMN IF EXISTS meeting_url;
ALTER TABLE session_bookings DROP COLUMN IF EXISTS timezone;
ALTER TABLE availability_slots DROP COLUMN IF EXISTS meeting_url;
ALTER TABLE availability_slots DROP COLUMN IF EXISTS timezone;

-- 3. assessment_documents
DROP TABLE IF EXISTS assessment_documents;

-- 2. files
DROP INDEX IF EXISTS idx_files_deleted_at;
DROP INDEX IF EXISTS idx_files_checksum;
DROP INDEX IF EXISTS idx_files_assessment_id;
ALTER TABLE files DROP CONSTRAINT IF EXISTS files_checksum_sha256_check;
ALTER TABLE files DROP CONSTRAINT IF EXISTS files_assessment_id_fkey;
ALTER TABLE files DROP COLUMN IF EXISTS deleted_at;
ALTER TABLE files DROP COLUMN IF EXISTS checksum_sha256;
ALTER TABLE files DROP COLUMN IF EXISTS assessment_id;

-- 1. conversations
ALTER TABLE user_preferences DROP CONSTRAINT IF EXISTS user_preferences_chat_notifications_check;
ALTER TABLE user_preferences DROP COLUMN IF EXISTS chat_notifications;
DROP POLICY IF EXISTS conversations_write ON conversations;
DROP POLICY IF EXISTS conversations_select ON conversations;
DROP TRIGGER IF EXISTS trg_messages_touch_conversation ON messages;
DROP FUNCTION IF EXISTS conversations_touch_last_message();
DROP INDEX IF EXISTS idx_messages_conversation_id;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_conversation_id_fkey;
ALTER TABLE messages DROP COLUMN IF EXISTS conversation_id;
DROP TABLE IF EXISTS conversations;
