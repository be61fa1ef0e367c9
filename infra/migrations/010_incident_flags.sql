-- Marks a dispatcher should see on an incident, e.g. 'possible_flood': an unverified report held for a
-- dispatcher's look instead of being offered automatically (docs/security.md, "Dispatch: help floods").
ALTER TABLE incidents ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
