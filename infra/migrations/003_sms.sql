-- SMS channel: outbox, inbound de-duplication, per-phone preferences, incident phases, OTP codes

-- every outbound text, written in the same transaction as the change that causes it
CREATE TABLE sms_outbox (
    id              bigserial PRIMARY KEY,
    to_phone        text NOT NULL,
    body            text NOT NULL,
    kind            text NOT NULL DEFAULT 'notice',        -- status, otp, reply, notice
    incident_id     uuid,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending','claimed','sending','sent','failed','skipped','expired')),
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,                           -- not worth sending after this (an OTP)
    lease_owner     text,
    lease_until     timestamptz,
    provider_sid    text UNIQUE,
    delivery_status text,                                  -- from /sms/status callbacks
    error           text,
    error_code      integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_outbox_due ON sms_outbox (due_at) WHERE status IN ('pending','claimed','sending');
CREATE INDEX sms_outbox_phone ON sms_outbox (to_phone, id);

-- every inbound MessageSid, inserted in the transaction of its effect: a replay is answered, not redone
CREATE TABLE sms_inbound (
    message_sid  text PRIMARY KEY,
    from_phone   text NOT NULL,
    body         text NOT NULL,
    action       text NOT NULL DEFAULT '',
    reply        text,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- per phone: the language last texted in, and the STOP/START state
CREATE TABLE sms_contacts (
    phone       text PRIMARY KEY,
    lang        text NOT NULL DEFAULT 'en',
    opted_out   boolean NOT NULL DEFAULT false,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

-- the last status phase of an SMS incident that its reporter was told about
CREATE TABLE sms_incidents (
    incident_id uuid PRIMARY KEY REFERENCES incidents(id),
    phase       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- one-time login codes (stored as an HMAC, never in clear) and their per-phone send limits
CREATE TABLE sms_otp (
    phone        text PRIMARY KEY,
    code_hash    text,
    expires_at   timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL DEFAULT now(),
    sends        integer NOT NULL DEFAULT 0,
    last_sent_at timestamptz
);
