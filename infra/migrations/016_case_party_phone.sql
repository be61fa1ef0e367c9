-- issue 19: a filer who gave no name is stored without one (the pages show "Applicant" / "申请人" in
-- their own language); the English word the server used to store is no name
UPDATE case_parties SET name = '' WHERE slot = 0 AND name = 'Applicant';

-- a verified phone finds the party slots a filer or mediator named it for (mediation cases.claim)
CREATE INDEX case_parties_phone ON case_parties (phone) WHERE phone IS NOT NULL;
