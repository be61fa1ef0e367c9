-- Staff intake (issue 13): the offline gazetteer, and incidents a call-taker opens for a caller.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A place of the gazetteer (`helpline places import`). `id` is the stable id: the file's own, or one
-- derived from name + address (dispatch/places.py), so that a re-import updates in place.
-- name_key / alias_keys / names / search are normalised copies (NFKC, lower case, single spaces) made at import;
-- `grams` holds the CJK bigrams and unigrams of `search`, so that Chinese queries are served by an index
-- whatever the database's locale (pg_trgm only sees CJK as word characters under a UTF-8 ctype).
CREATE TABLE places (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    address     text NOT NULL DEFAULT '',
    aliases     text[] NOT NULL DEFAULT '{}',
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    name_key    text NOT NULL,
    alias_keys  text[] NOT NULL DEFAULT '{}',
    names       text NOT NULL DEFAULT '',
    search      text NOT NULL,
    grams       text[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- substring and typo search over name, address and aliases together (LIKE '%q%' and word similarity)
CREATE INDEX places_search_trgm ON places USING gin (search gin_trgm_ops);
-- name and aliases without the address, for a typo (word similarity): addresses' "Road"/"路" would make
-- every row a candidate
CREATE INDEX places_names_trgm ON places USING gin (names gin_trgm_ops);
-- name prefixes (queries of 1-2 characters)
CREATE INDEX places_name_prefix ON places (name_key text_pattern_ops);
CREATE INDEX places_alias_keys ON places USING gin (alias_keys);
CREATE INDEX places_grams ON places USING gin (grams);

-- incidents opened by a dispatcher for a caller: by phone or at a counter
ALTER TABLE incidents DROP CONSTRAINT incidents_channel_check;
ALTER TABLE incidents ADD CONSTRAINT incidents_channel_check
    CHECK (channel IN ('ws', 'http', 'sms', 'phone', 'walk_in'));
ALTER TABLE incidents ADD COLUMN opened_by uuid REFERENCES accounts(id);
ALTER TABLE incidents ADD COLUMN caller_name text;
ALTER TABLE incidents ADD COLUMN place_id text;
ALTER TABLE incidents ADD COLUMN address text;
-- incident.link: the incident this one was closed as a duplicate of
ALTER TABLE incidents ADD COLUMN duplicate_of uuid REFERENCES incidents(id);
-- a call-taker's request_id is theirs: the same one again is the same incident, whoever the caller
CREATE UNIQUE INDEX incidents_opened_request ON incidents (opened_by, request_id) WHERE opened_by IS NOT NULL;
-- the duplicate rule's look-ups: open incidents by reporter (exists: incidents_reporter) and recent ones
CREATE INDEX incidents_recent_open ON incidents (created_at) WHERE status NOT IN ('resolved', 'cancelled');
