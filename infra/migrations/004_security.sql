-- sessions that can be ended, revoked tokens, and the audit log of staff reads

ALTER TABLE accounts ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;

CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid,
    actor_role   text,
    action       text NOT NULL,
    subject_type text NOT NULL,
    subject_id   text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- `helpline purge` may blank personal data in the incident log, and only it:
-- it sets helpline.purge = 'on' for its own transaction.
CREATE OR REPLACE FUNCTION incident_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('helpline.purge', true) = 'on' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'incident_events is append-only';
END $$;

-- false alarms per reporter, for dispatchers
CREATE INDEX incidents_reporter ON incidents (reporter_id);

ALTER TABLE incidents ADD COLUMN purged_at timestamptz;
