-- mediation: cases, parties with join codes, agencies, rooms and messages, agreements, signatures, settlements

CREATE SEQUENCE case_ref_seq START 1001;

CREATE TABLE cases (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_no        text NOT NULL UNIQUE,
    filer_id      uuid NOT NULL REFERENCES accounts(id),
    status        text NOT NULL DEFAULT 'filed' CHECK (status IN
                      ('filed','in_mediation','agreement_proposed','settled','failed','referred','withdrawn')),
    category      text NOT NULL CHECK (category IN ('neighbour','family','labour','property','consumer','other')),
    summary       text NOT NULL CHECK (char_length(summary) <= 4000),      -- '' once purged
    mediator_id   uuid REFERENCES accounts(id),
    agreement_id  uuid,                      -- the current proposal (FK below)
    outcome_note  text,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    purged_at     timestamptz                -- personal data blanked by `helpline purge`
);
CREATE INDEX cases_open ON cases (created_at)
    WHERE status NOT IN ('settled','failed','referred','withdrawn');
CREATE INDEX cases_mediator ON cases (mediator_id);
CREATE INDEX cases_filer ON cases (filer_id);

-- slot 0 is the filer; the others are the parties the filer named, each with a join code
CREATE TABLE case_parties (
    case_id     uuid NOT NULL REFERENCES cases(id),
    slot        integer NOT NULL CHECK (slot >= 0),
    name        text NOT NULL,
    phone       text,
    join_code   text UNIQUE,
    account_id  uuid REFERENCES accounts(id),
    via         text NOT NULL DEFAULT 'ws' CHECK (via IN ('ws','sms')),
    joined_at   timestamptz,
    PRIMARY KEY (case_id, slot),
    UNIQUE (case_id, account_id),
    CHECK ((slot = 0) = (join_code IS NULL))
);
CREATE INDEX case_parties_account ON case_parties (account_id);

CREATE TABLE case_agencies (
    case_id     uuid NOT NULL REFERENCES cases(id),
    account_id  uuid NOT NULL REFERENCES accounts(id),
    invited_by  uuid NOT NULL REFERENCES accounts(id),
    invited_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, account_id)
);
CREATE INDEX case_agencies_account ON case_agencies (account_id);

-- one counter row per room: taking the next seq locks it, so a room's seq has no gap and no repeat
CREATE TABLE case_rooms (
    case_id   uuid NOT NULL REFERENCES cases(id),
    room      text NOT NULL,
    last_seq  bigint NOT NULL,
    PRIMARY KEY (case_id, room)
);

CREATE TABLE case_messages (
    id             bigserial PRIMARY KEY,
    case_id        uuid NOT NULL REFERENCES cases(id),
    room           text NOT NULL,
    seq            bigint NOT NULL CHECK (seq >= 1),
    sender_id      uuid NOT NULL REFERENCES accounts(id),
    sender_name    text NOT NULL,
    sender_role    text NOT NULL,
    client_msg_id  text NOT NULL,
    body           text NOT NULL CHECK (char_length(body) <= 4000),       -- '' once purged
    via            text NOT NULL CHECK (via IN ('ws','sms')),
    sent_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (case_id, room, seq),
    UNIQUE (case_id, room, sender_id, client_msg_id)
);

CREATE TABLE agreements (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id      uuid NOT NULL REFERENCES cases(id),
    text         text NOT NULL,
    sha256       text NOT NULL,
    sign_code    text NOT NULL,              -- what an SMS party replies to sign this very text
    proposed_by  uuid NOT NULL REFERENCES accounts(id),
    proposed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX agreements_case ON agreements (case_id, proposed_at);
ALTER TABLE cases ADD CONSTRAINT cases_agreement_fk FOREIGN KEY (agreement_id) REFERENCES agreements(id);

CREATE TABLE agreement_signatures (
    agreement_id  uuid NOT NULL REFERENCES agreements(id),
    party_id      uuid NOT NULL REFERENCES accounts(id),
    party_name    text NOT NULL,
    via           text NOT NULL CHECK (via IN ('ws','sms')),
    signed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (agreement_id, party_id)
);

-- the signed text, its hash and who signed when: written once, when the last party signs
CREATE TABLE settlements (
    case_id       uuid PRIMARY KEY REFERENCES cases(id),
    agreement_id  uuid NOT NULL UNIQUE REFERENCES agreements(id),
    text          text NOT NULL,
    sha256        text NOT NULL,
    signatures    jsonb NOT NULL,
    settled_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE case_events (
    id        bigserial PRIMARY KEY,
    case_id   uuid NOT NULL REFERENCES cases(id),
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id  uuid REFERENCES accounts(id),
    kind      text NOT NULL,
    data      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_case ON case_events (case_id, id);

-- messages, agreements, signatures, settlements and the case log are never rewritten; only
-- `helpline purge` (helpline.purge = 'on' in its own transaction) may blank old messages.
-- Agreements, signatures and settlements are the signed record: nothing may change them.
CREATE FUNCTION mediation_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'case_messages'
       AND current_setting('helpline.purge', true) = 'on' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER case_messages_no_update BEFORE UPDATE OR DELETE ON case_messages
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();
CREATE TRIGGER agreements_no_update BEFORE UPDATE OR DELETE ON agreements
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();
CREATE TRIGGER agreement_signatures_no_update BEFORE UPDATE OR DELETE ON agreement_signatures
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();
CREATE TRIGGER settlements_no_update BEFORE UPDATE OR DELETE ON settlements
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();
CREATE TRIGGER case_events_no_update BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION mediation_append_only();
