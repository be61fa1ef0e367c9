-- SMS and mediation against abuse (issue 20): a sign code per SMS party, purge of the signed record's
-- names, and the names that were phone numbers.

-- one signing code per SMS party of an agreement (agreements.sign_code is no longer accepted by SMS)
CREATE TABLE agreement_sign_codes (
    agreement_id  uuid NOT NULL REFERENCES agreements(id),
    account_id    uuid NOT NULL REFERENCES accounts(id),
    code          text NOT NULL,
    PRIMARY KEY (agreement_id, account_id)
);

-- the signed record keeps its hash, text, signature times and channels for good; `helpline purge`
-- (helpline.purge = 'on') may blank the party names in it, and nothing else
ALTER TABLE settlements ADD COLUMN names_purged_at timestamptz;

CREATE OR REPLACE FUNCTION mediation_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('helpline.purge', true) = 'on' THEN
        IF TG_TABLE_NAME = 'case_messages' THEN
            RETURN NEW;
        END IF;
        IF TG_TABLE_NAME = 'agreement_signatures' THEN      -- nested: plpgsql does not short-circuit AND
            IF NEW.party_name = '' AND NEW.agreement_id = OLD.agreement_id AND NEW.party_id = OLD.party_id
               AND NEW.via = OLD.via AND NEW.signed_at = OLD.signed_at THEN
                RETURN NEW;
            END IF;
        END IF;
        IF TG_TABLE_NAME = 'settlements' THEN
            IF NEW.names_purged_at IS NOT NULL
               AND NEW.case_id = OLD.case_id AND NEW.agreement_id = OLD.agreement_id AND NEW.text = OLD.text
               AND NEW.sha256 = OLD.sha256 AND NEW.settled_at = OLD.settled_at
               AND jsonb_array_length(NEW.signatures) = jsonb_array_length(OLD.signatures)
               AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(NEW.signatures) s WHERE s->>'name' <> '') THEN
                RETURN NEW;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

-- the global hourly budget of outbound texts counts what was sent in the last hour
CREATE INDEX sms_outbox_sent ON sms_outbox (sent_at) WHERE sent_at IS NOT NULL;

-- no name is a phone number: names made from phones (OTP and SMS sign-ups) become empty
UPDATE accounts SET name = ''
WHERE role = 'resident' AND regexp_replace(name, '[^0-9]', '', 'g') ~ '[0-9]{7}'
  AND regexp_replace(name, '[\s().+-]', '', 'g') ~ '^[0-9]+$';
UPDATE case_parties SET name = 'Party'
WHERE regexp_replace(name, '[^0-9]', '', 'g') ~ '[0-9]{7}'
  AND regexp_replace(name, '[\s().+-]', '', 'g') ~ '^[0-9]+$';
