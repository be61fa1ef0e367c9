-- Tiered matching (issue 14): which circle each offer came from, the incident's grid's workers, its
-- community's, or everyone within the radius (dispatch/tiers.py). Offers made before this were all `radius`.
ALTER TABLE offers ADD COLUMN tier text NOT NULL DEFAULT 'radius' CHECK (tier IN ('grid', 'community', 'radius'));

-- "this grid and everything under it" (grids.path && …) is asked at every report in a grid (the members of
-- its community, dispatch/roster_store.grid_members): a GIN index with a pending list (fastupdate, the
-- default) scans that list whole until a vacuum merges it, milliseconds after an import of thousands of
-- grids; without it, each imported row goes straight into the index.
ALTER INDEX grids_path SET (fastupdate = off);
SELECT gin_clean_pending_list('grids_path'::regclass);
