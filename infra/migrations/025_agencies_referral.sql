-- 3+N mediation (issue 15, part 2; contract §10): the agency directory, disputes referred from dispatch
-- into mediation, and where a referred case went.

-- An agency account's kind (infra/agency_types.py); only agency accounts have one
ALTER TABLE accounts ADD COLUMN agency_type text CHECK (agency_type IN
    ('court', 'police', 'justice', 'womens_federation', 'civil_affairs', 'security_committee',
     'party_service', 'other'));
UPDATE accounts SET agency_type = 'other' WHERE role = 'agency';
ALTER TABLE accounts ADD CONSTRAINT accounts_agency_type_role CHECK (agency_type IS NULL OR role = 'agency');
CREATE INDEX accounts_agencies ON accounts (agency_type) WHERE role = 'agency';

-- incident.refer: a case opened from a dispute incident by dispatch staff or the incident's responder. The
-- case records its incident and the incident its case; each also keeps the other's reference number, so that
-- neither domain reads the other's tables to show it. One case per incident (a re-sent refer finds it).
ALTER TABLE cases ADD COLUMN incident_id uuid REFERENCES incidents(id);
ALTER TABLE cases ADD COLUMN incident_ref text;
CREATE UNIQUE INDEX cases_incident ON cases (incident_id) WHERE incident_id IS NOT NULL;
ALTER TABLE incidents ADD COLUMN case_id uuid REFERENCES cases(id);
ALTER TABLE incidents ADD COLUMN case_ref text;
-- the referrer is the case's opener (cases.filer_id), with the role it had then
ALTER TABLE cases DROP CONSTRAINT cases_opened_by_role_check;
ALTER TABLE cases ADD CONSTRAINT cases_opened_by_role_check
    CHECK (opened_by_role IN ('mediator', 'clerk', 'dispatcher', 'admin', 'responder'));

-- case.close with outcome `referred`: an agency account of the directory, or a body outside the system
-- (its type and a free-text name). The referred-to agency account may read the joint room and the agreement.
ALTER TABLE cases ADD COLUMN referred_to_agency uuid REFERENCES accounts(id);
ALTER TABLE cases ADD COLUMN referred_to_type text;
ALTER TABLE cases ADD COLUMN referred_to_name text;
CREATE INDEX cases_referred_to_agency ON cases (referred_to_agency) WHERE referred_to_agency IS NOT NULL;
