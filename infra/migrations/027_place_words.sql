-- The gazetteer's typo stage (issue 13): the vocabulary of place names and aliases, instead of word
-- similarity over every place. pg_trgm's manual suggests exactly this for spelling correction: a table
-- of the distinct words, searched by similarity (a few thousand rows however many places there are).
CREATE TABLE place_words (word text PRIMARY KEY);
CREATE INDEX place_words_trgm ON place_words USING gist (word gist_trgm_ops);

-- the words of the places already imported (dispatch/places.py words_of, in SQL: letters or digits, at
-- least 3 long, no CJK, not only digits); re-imports add the words of new names
INSERT INTO place_words (word)
SELECT DISTINCT w FROM places, regexp_split_to_table(names, '[^[:alnum:]]+') AS w
WHERE length(w) >= 3 AND w !~ '^[0-9]+$' AND w !~ '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]'
ON CONFLICT DO NOTHING;

-- the old typo stage's index (word similarity over name and aliases of every place) is not read any more
DROP INDEX places_names_trgm;

-- Name prefixes in byte order (C collation), so that `ORDER BY name_key COLLATE "C" LIMIT n` reads the first
-- n entries of the index: a text_pattern_ops index serves the LIKE but not the ORDER BY, and a one-character
-- query then sorted every name starting with it (thousands).
CREATE INDEX places_name_c ON places ((name_key COLLATE "C"));
DROP INDEX places_name_prefix;

-- A bulk import leaves the GIN indexes' new entries in their pending lists, which every look-up then scans
-- (tens of ms) until a vacuum merges them: an import ends by merging them (places_store.after_import), and
-- so does this migration for what is there.
SELECT gin_clean_pending_list('places_search_trgm'::regclass), gin_clean_pending_list('places_alias_keys'::regclass),
       gin_clean_pending_list('places_grams'::regclass);
