-- Offers that reach a locked phone (issue 12): the outbox's texts and calls about an offer, at most one of
-- each kind per offer (no foreign key: the outbox is the SMS package's); answers by phone call, each CallSid
-- handled once (inserted in the transaction of its effect, like sms_inbound).
ALTER TABLE sms_outbox ADD COLUMN offer_id uuid;
CREATE UNIQUE INDEX sms_outbox_offer ON sms_outbox (offer_id, kind) WHERE offer_id IS NOT NULL;

CREATE TABLE voice_inbound (
    call_sid     text PRIMARY KEY,
    offer_id     uuid,
    digits       text NOT NULL DEFAULT '',
    action       text NOT NULL DEFAULT '',
    reply        text,
    received_at  timestamptz NOT NULL DEFAULT now()
);
