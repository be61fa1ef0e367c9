-- The console rings (issue 12): who said "I'm on it" for an incident, and the supervisors texted about
-- escalations nobody took (dispatch/alarm.py has the rules).

-- [{"id", "name", "at", "status"}]: one entry per dispatcher, with the incident's status when they took it;
-- every acknowledgement is also an `acknowledged` event in incident_events
ALTER TABLE incidents ADD COLUMN acknowledged_by jsonb NOT NULL DEFAULT '[]';

-- `helpline user add/set ... --supervisor`: texted (if they have a phone) about an escalated incident no
-- dispatcher acknowledged within dispatch.supervisor_after_s
ALTER TABLE accounts ADD COLUMN supervisor boolean NOT NULL DEFAULT false;
CREATE INDEX accounts_supervisors ON accounts (id) WHERE supervisor;
