-- Tiered matching (issue 14): which circle each offer came from, the incident's grid's workers, its
-- community's, or everyone within the radius (dispatch/tiers.py). Offers made before this were all `radius`.
ALTER TABLE offers ADD COLUMN tier text NOT NULL DEFAULT 'radius' CHECK (tier IN ('grid', 'community', 'radius'));
