-- Reports (issue 16, contract §11): one row of facts per incident, so that a report over a year is one
-- GROUP BY over this table (reports/store.py) instead of a scan of the event log.
--
-- Kept up to date in the transaction of every change: each row of the incident log, as it is appended,
-- updates its incident's facts (incident_facts_apply below); a changed grid is copied over by a trigger on
-- incidents. The plain rule, the facts recomputed from the whole log (incident_facts_of), fills the table
-- here for the incidents that exist already, and the tests hold the incremental rows equal to it.
-- Intervals are seconds from the press (incidents.created_at) to the first event of each kind. Nothing
-- personal is kept: purge (server/purge.py) leaves this table alone, so figures survive it.
-- No foreign key: the facts of an incident are statistics, kept whatever becomes of its row.
CREATE TABLE incident_facts (
    incident_id      uuid PRIMARY KEY,
    created_at       timestamptz NOT NULL,
    category         text NOT NULL,
    channel          text NOT NULL,
    grid_code        text,
    status           text NOT NULL,
    disposition      text,
    escalated        boolean NOT NULL DEFAULT false,
    offers           integer NOT NULL DEFAULT 0,     -- `offered` events
    offers_accepted  integer NOT NULL DEFAULT 0,     -- `assigned` events by an accept
    first_offer_s    double precision,               -- press -> first offer
    assigned_s       double precision,               -- press -> first assigned
    on_scene_s       double precision,               -- press -> first on scene
    closed_s         double precision,               -- press -> resolved or cancelled (the final event)
    closed_at        timestamptz                     -- when (the export's order: GET /api/export/incidents)
);
CREATE INDEX incident_facts_created ON incident_facts (created_at);
CREATE INDEX incident_facts_closed ON incident_facts (closed_at, incident_id) WHERE closed_at IS NOT NULL;

-- The plain rule: the facts of these incidents from their rows and whole logs.
CREATE FUNCTION incident_facts_of(ids uuid[]) RETURNS SETOF incident_facts LANGUAGE sql STABLE AS $$
    SELECT i.id, i.created_at, i.category, i.channel, i.grid_code, i.status, i.disposition,
           coalesce(bool_or(e.kind = 'escalated'), false),
           count(*) FILTER (WHERE e.kind = 'offered')::int,
           count(*) FILTER (WHERE e.kind = 'assigned' AND e.data->>'by' = 'accept')::int,
           extract(epoch FROM min(e.at) FILTER (WHERE e.kind = 'offered') - i.created_at)::float8,
           extract(epoch FROM min(e.at) FILTER (WHERE e.kind = 'assigned') - i.created_at)::float8,
           extract(epoch FROM min(e.at) FILTER (WHERE e.kind = 'on_scene') - i.created_at)::float8,
           CASE WHEN i.status IN ('resolved', 'cancelled') THEN extract(epoch FROM min(e.at) FILTER (
               WHERE e.kind IN ('resolved', 'cancelled', 'closed')) - i.created_at)::float8 END,
           CASE WHEN i.status IN ('resolved', 'cancelled') THEN min(e.at) FILTER (
               WHERE e.kind IN ('resolved', 'cancelled', 'closed')) END
    FROM incidents i LEFT JOIN incident_events e ON e.incident_id = i.id
    WHERE i.id = ANY(ids)
    GROUP BY i.id
$$;

-- The fast path: one log row applied to its incident's facts (the row made at its `reported` event, or at
-- the first event that counts when there was none).
CREATE FUNCTION incident_facts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text := NEW.kind;
BEGIN
    IF k = 'reported' THEN     -- the first row of every incident's log: the facts start
        INSERT INTO incident_facts (incident_id, created_at, category, channel, grid_code, status, disposition)
        SELECT i.id, i.created_at, i.category, i.channel, i.grid_code, i.status, i.disposition
        FROM incidents i WHERE i.id = NEW.incident_id
        ON CONFLICT (incident_id) DO NOTHING;
        RETURN NULL;
    END IF;
    FOR attempt IN 1..2 LOOP
        UPDATE incident_facts f SET
            category = i.category, channel = i.channel, grid_code = i.grid_code, status = i.status,
            disposition = i.disposition,
            escalated = f.escalated OR k = 'escalated',
            offers = f.offers + (k = 'offered')::int,
            offers_accepted = f.offers_accepted + (k = 'assigned' AND NEW.data->>'by' = 'accept')::int,
            first_offer_s = CASE WHEN k = 'offered' AND f.first_offer_s IS NULL
                                 THEN extract(epoch FROM NEW.at - f.created_at)::float8 ELSE f.first_offer_s END,
            assigned_s = CASE WHEN k = 'assigned' AND f.assigned_s IS NULL
                              THEN extract(epoch FROM NEW.at - f.created_at)::float8 ELSE f.assigned_s END,
            on_scene_s = CASE WHEN k = 'on_scene' AND f.on_scene_s IS NULL
                              THEN extract(epoch FROM NEW.at - f.created_at)::float8 ELSE f.on_scene_s END,
            closed_s = CASE WHEN k IN ('resolved', 'cancelled', 'closed') AND f.closed_s IS NULL
                                 AND i.status IN ('resolved', 'cancelled')
                            THEN extract(epoch FROM NEW.at - f.created_at)::float8 ELSE f.closed_s END,
            closed_at = CASE WHEN k IN ('resolved', 'cancelled', 'closed') AND f.closed_at IS NULL
                                  AND i.status IN ('resolved', 'cancelled') THEN NEW.at ELSE f.closed_at END
        FROM incidents i WHERE i.id = NEW.incident_id AND f.incident_id = NEW.incident_id;
        EXIT WHEN FOUND;
        INSERT INTO incident_facts (incident_id, created_at, category, channel, grid_code, status, disposition)
        SELECT i.id, i.created_at, i.category, i.channel, i.grid_code, i.status, i.disposition
        FROM incidents i WHERE i.id = NEW.incident_id
        ON CONFLICT (incident_id) DO NOTHING;
    END LOOP;
    RETURN NULL;
END $$;
-- only the kinds that change a fact (notes, acks, texts sent… cost nothing); `status` is as of the last
-- of these, exact for the final ones (the only ones a report reads)
CREATE TRIGGER incident_facts_apply AFTER INSERT ON incident_events
    FOR EACH ROW WHEN (NEW.kind IN ('reported', 'offered', 'assigned', 'on_scene', 'escalated', 'resolved',
                                    'cancelled', 'closed'))
    EXECUTE FUNCTION incident_facts_apply();

-- an incident moved to another grid (re-tagged when a dispatcher locates it) is counted in its new grid
CREATE FUNCTION incident_facts_grid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incident_facts SET grid_code = NEW.grid_code WHERE incident_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER incident_facts_grid AFTER UPDATE OF grid_code ON incidents
    FOR EACH ROW WHEN (OLD.grid_code IS DISTINCT FROM NEW.grid_code) EXECUTE FUNCTION incident_facts_grid();

-- the incidents that exist already
INSERT INTO incident_facts SELECT * FROM incident_facts_of(ARRAY(SELECT id FROM incidents));

-- API keys for other departments (`helpline apikey add NAME --scope export`): the secret part stored as
-- an argon2 hash, found by its public id (the part before the dot); a revoked key is refused at once
-- (every request reads its row).
CREATE TABLE api_keys (
    name        text PRIMARY KEY,
    key_id      text NOT NULL UNIQUE,
    secret_hash text NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('export')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    last_used_at timestamptz
);
