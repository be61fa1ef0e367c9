-- Grids (issue 14, contract §9): the city's districts, streets, communities and grids, the accounts that
-- belong to them, and the grid each incident and case lies in.

-- A grid at any level. `path` lists the codes from the district down to this one (itself last), so that
-- "this grid and everything under it" is `path @> ARRAY[code]`. `geometry` is the GeoJSON Polygon or
-- MultiPolygon as imported (validated at import, grids/rules.py); the box is its bounding box, for a
-- first cut before the exact test.
CREATE TABLE grids (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    level       text NOT NULL CHECK (level IN ('district', 'street', 'community', 'grid')),
    parent      text REFERENCES grids(code) DEFERRABLE INITIALLY DEFERRED,
    path        text[] NOT NULL,
    geometry    jsonb NOT NULL,
    bbox        box NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grids_path ON grids USING gin (path);
CREATE INDEX grids_bbox ON grids USING gist (bbox);

-- the grids an account works in (`helpline user set NAME --grids CODE,…`): a grid worker's own grid, a
-- mediator's community, a dispatcher's area, an agency's coverage
CREATE TABLE account_grids (
    account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code        text NOT NULL REFERENCES grids(code),
    PRIMARY KEY (account_id, code)
);
CREATE INDEX account_grids_code ON account_grids (code);

-- a dispatcher limited to their area (their account_grids, descendants included) sees and acts on only it
ALTER TABLE accounts ADD COLUMN area_limited boolean NOT NULL DEFAULT false;

-- the innermost grid holding the incident's / case's position at intake (re-tagged when it moves); no
-- foreign key: the figures of past incidents keep their grid whatever a later import does
ALTER TABLE incidents ADD COLUMN grid_code text;
ALTER TABLE cases ADD COLUMN grid_code text;
CREATE INDEX incidents_grid_open ON incidents (grid_code) WHERE status NOT IN ('resolved', 'cancelled');
CREATE INDEX cases_grid ON cases (grid_code);
