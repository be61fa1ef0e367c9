-- accounts, responders, incidents, offers, the incident event log

CREATE TABLE accounts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text UNIQUE,
    role          text NOT NULL CHECK (role IN ('resident','responder','dispatcher','mediator','agency','admin')),
    name          text NOT NULL DEFAULT '',
    password_hash text,
    phone         text UNIQUE,
    device_id     text UNIQUE,
    verified      boolean NOT NULL DEFAULT false,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE responders (
    account_id  uuid PRIMARY KEY REFERENCES accounts(id),
    skills      text[] NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'off_duty' CHECK (status IN ('off_duty','available','offered','busy')),
    lat         double precision,
    lon         double precision,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE incident_ref_seq START 1001;

CREATE TABLE incidents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_no         text NOT NULL UNIQUE,
    reporter_id    uuid NOT NULL REFERENCES accounts(id),
    request_id     text NOT NULL,
    status         text NOT NULL CHECK (status IN ('queued','offered','assigned','en_route','on_scene','resolved','escalated','cancelled')),
    category       text NOT NULL,
    skill          text NOT NULL,
    priority       integer NOT NULL,
    lat            double precision,
    lon            double precision,
    accuracy_m     double precision,
    note           text NOT NULL DEFAULT '',
    channel        text NOT NULL CHECK (channel IN ('ws','http','sms')),
    responder_id   uuid REFERENCES accounts(id),
    offer_attempts integer NOT NULL DEFAULT 0,
    version        integer NOT NULL DEFAULT 1,
    disposition    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reporter_id, request_id)
);
CREATE INDEX incidents_open ON incidents (status) WHERE status NOT IN ('resolved','cancelled');
CREATE INDEX incidents_responder ON incidents (responder_id) WHERE status NOT IN ('resolved','cancelled');

CREATE TABLE offers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    incident_id  uuid NOT NULL REFERENCES incidents(id),
    responder_id uuid NOT NULL REFERENCES accounts(id),
    attempt      integer NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','accepted','declined','expired','withdrawn')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    answered_at  timestamptz
);
-- one pending offer per incident and per responder, enforced by the database too
CREATE UNIQUE INDEX offers_one_pending_per_incident ON offers (incident_id) WHERE state = 'pending';
CREATE UNIQUE INDEX offers_one_pending_per_responder ON offers (responder_id) WHERE state = 'pending';
CREATE INDEX offers_due ON offers (expires_at) WHERE state = 'pending';
CREATE INDEX offers_incident ON offers (incident_id);

CREATE TABLE incident_events (
    id          bigserial PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incidents(id),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id    uuid REFERENCES accounts(id),
    kind        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);

-- append-only: the log is never rewritten
CREATE FUNCTION incident_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'incident_events is append-only';
END $$;
CREATE TRIGGER incident_events_no_update BEFORE UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_append_only();
