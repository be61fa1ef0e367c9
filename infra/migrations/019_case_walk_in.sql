-- issue 13: a front-desk account (role `clerk`) and cases opened for visitors at the counter.
-- A case a mediator or clerk opens for visitors has no slot 0: every party is named, with a join
-- code; cases.filer_id is the staff account that opened it (so request_id is per staff account) and
-- opened_by_role the role it had then. NULL opened_by_role: a party filed the case themselves.
ALTER TABLE accounts DROP CONSTRAINT accounts_role_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check
    CHECK (role IN ('resident','responder','dispatcher','mediator','agency','admin','clerk'));
ALTER TABLE cases ADD COLUMN opened_by_role text CHECK (opened_by_role IN ('mediator','clerk'));
-- a clerk's own cases until a mediator takes them (cases.mine)
CREATE INDEX cases_opened_untaken ON cases (filer_id, created_at)
    WHERE opened_by_role IS NOT NULL AND mediator_id IS NULL;
