-- mediation's texts go through the one SMS outbox, in the transaction of the case change: the case they
-- are about is kept beside them as incident_id is (no foreign key: the outbox is the SMS package's)
ALTER TABLE sms_outbox ADD COLUMN case_id uuid;
