-- The escalation plan is frozen onto each incident when it is reported (radius, how many responders
-- are asked in turn, how long each may think), so a configuration change never alters an incident in
-- flight. Incidents reported before this migration get the defaults the configuration had then.
ALTER TABLE incidents
    ADD COLUMN radius_km       double precision NOT NULL DEFAULT 10,
    ADD COLUMN max_offers      integer          NOT NULL DEFAULT 3,
    ADD COLUMN offer_timeout_s double precision NOT NULL DEFAULT 20;
