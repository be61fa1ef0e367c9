"""SQL of the gazetteer (the rules: dispatch/places.py): import by stable id, search, look-up."""
from __future__ import annotations

from typing import Any

import asyncpg

from dispatch import places as pl
from infra.db import Conn
from infra.imports import Summary

BATCH = 1000
CANDIDATES = 200     # rows a substring or typo stage reads at most
SEP = "\x1f"         # joins a row's array values into one text: unnest() cannot take ragged 2-D arrays

# one statement per batch; each row is written whole or not at all. A row equal to the stored one is
# left alone (neither updated nor counted as such): xmax = 0 tells an insert from an update.
UPSERT_SQL = f"""
INSERT INTO places (id, name, address, aliases, lat, lon, name_key, alias_keys, search, grams, names)
SELECT id, name, address, string_to_array(aliases, '{SEP}'), lat, lon, name_key,
       string_to_array(alias_keys, '{SEP}'), search, string_to_array(grams, '{SEP}'), names
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::text[])
     AS r(id, name, address, aliases, lat, lon, name_key, alias_keys, search, grams, names)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, aliases = EXCLUDED.aliases,
    lat = EXCLUDED.lat, lon = EXCLUDED.lon, name_key = EXCLUDED.name_key, alias_keys = EXCLUDED.alias_keys,
    search = EXCLUDED.search, grams = EXCLUDED.grams, names = EXCLUDED.names, updated_at = now()
WHERE (places.name, places.address, places.aliases, places.lat, places.lon)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.address, EXCLUDED.aliases, EXCLUDED.lat, EXCLUDED.lon)
RETURNING (xmax = 0) AS added
"""


# the vocabulary the typo stage corrects to (only ever grows: a word no place has any more finds nothing)
WORDS_SQL = "INSERT INTO place_words (word) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"


def _join(values: list[str]) -> str:
    return SEP.join(values)     # string_to_array('', sep) is the empty array


async def upsert(conn: Conn, places: list[pl.Place]) -> Summary:
    """Write the places (ids unique among them), in batches; what each did."""
    out = Summary()
    for i in range(0, len(places), BATCH):
        batch = places[i:i + BATCH]
        cols: list[list[Any]] = [[p.id for p in batch], [p.name for p in batch], [p.address for p in batch],
                                 [_join(list(p.aliases)) for p in batch], [p.lat for p in batch],
                                 [p.lon for p in batch], [p.name_key for p in batch],
                                 [_join(p.alias_keys) for p in batch], [p.search for p in batch],
                                 [_join(pl.grams(p.search)) for p in batch], [p.names for p in batch]]
        rows = await conn.fetch(UPSERT_SQL, *cols)
        await conn.execute(WORDS_SQL, sorted({w for p in batch for w in p.words}))
        added = sum(1 for r in rows if r["added"])
        out.added += added
        out.updated += len(rows) - added
        out.unchanged += len(batch) - len(rows)
    return out


async def after_import(conn: Conn) -> None:
    """Ready for searching after an import: the GIN indexes' pending lists merged (a look-up scans a pending
    list whole: tens of ms after a bulk import, until a vacuum came by) and fresh statistics (without them the
    planner guesses how many places hold an alias and may read the whole table for a LIMIT it thinks near)."""
    await conn.execute("SELECT gin_clean_pending_list(i::regclass) FROM unnest($1::text[]) AS i", list(GIN_INDEXES))
    await conn.execute("ANALYZE places, place_words")


GIN_INDEXES = ("places_search_trgm", "places_alias_keys", "places_grams")


def _row_place(r: asyncpg.Record) -> pl.Place:
    return pl.Place(r["id"], r["name"], r["address"], r["lat"], r["lon"], tuple(r["aliases"]))


async def get(conn: Conn, place_id: str) -> pl.Place | None:
    r = await conn.fetchrow("SELECT * FROM places WHERE id = $1", place_id)
    return _row_place(r) if r else None


_COLS = "id, name, address, aliases, lat, lon, name_key, alias_keys"

# Each stage is cheap whatever the size of the city: it stops at a LIMIT in index order (prefix) or at
# the first rows found (substring, typo), never ranks every match. Later stages run only while the
# earlier ones found fewer than the limit (the typo stage: none); Python ranks the union
# (dispatch/places.py, one rule).
PREFIX_SQL = (f"(SELECT {_COLS}, 0::real AS sim FROM places WHERE (name_key COLLATE \"C\") LIKE $1 || '%'"
              f" ORDER BY name_key COLLATE \"C\" LIMIT $2)"
              f" UNION ALL (SELECT {_COLS}, 0::real FROM places WHERE alias_keys @> ARRAY[$3] LIMIT $2)")
SUBSTRING_SQL = {
    # a CJK pair or more: every bigram stored (GIN, whatever the locale), then the substring itself
    "cjk": f"SELECT {_COLS}, 0::real AS sim FROM places WHERE grams @> $3::text[]"
           " AND search LIKE '%' || $1 || '%' LIMIT $2",
    # 3+ characters: the trigram index
    "text": f"SELECT {_COLS}, 0::real AS sim FROM places WHERE search LIKE '%' || $1 || '%' LIMIT $2",
}
# a typo: each word of the query that no place has, replaced by the most similar word that one has
# (pg_trgm similarity over the vocabulary, a KNN scan of its GiST index: the nearest only)
FIX_SQL = """SELECT q, (SELECT word FROM place_words WHERE word % q ORDER BY word <-> q, word LIMIT 1) AS fix
FROM unnest($1::text[]) AS q WHERE NOT EXISTS (SELECT 1 FROM place_words WHERE word = q)"""


def all_words_sql(n: int) -> str:
    """The places holding each of n words (the trigram index, like the substring stage; one LIKE a word:
    `LIKE ALL (array)` is not served by a GIN index). $1 is the limit, $2… the patterns."""
    every = " AND ".join(f"search LIKE ${i + 2}" for i in range(n))
    return f"SELECT {_COLS}, 0::real AS sim FROM places WHERE {every} LIMIT $1"


async def search(conn: Conn, q: str, limit: int) -> list[dict[str, Any]]:
    """Places matching q, best first (dispatch/places.py), at most `limit`.

    Planned for the query at hand (plan_cache_mode): a plan made for any query (what a prepared
    statement gets after a few runs) cannot know how many rows a pattern matches, and may read them all."""
    query = pl.plan_query(q)
    if not query.key:
        return []
    key = query.key     # what the matches are ranked against: the query, or the query corrected
    found: dict[str, asyncpg.Record] = {}

    def add(rows: list[asyncpg.Record]) -> None:
        for r in rows:
            found.setdefault(r["id"], r)
    async with conn.transaction(readonly=True):
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        add(await conn.fetch(PREFIX_SQL, query.like, limit, query.key))
        if len(found) < limit and query.mode != "prefix":
            extra: list[Any] = [list(query.grams)] if query.mode == "cjk" else []
            add(await conn.fetch(SUBSTRING_SQL[query.mode], query.like, CANDIDATES, *extra))
        if not found and query.words:    # a typo, or the words in another order: only when nothing matched
            fixes = {r["q"]: r["fix"] for r in await conn.fetch(FIX_SQL, list(query.words)) if r["fix"]}
            if fixes or len(query.words) > 1:
                key = pl.corrected(query.key, fixes)
                patterns = [f"%{pl.escape_like(w)}%" for w in pl.words_of(key)]
                add(await conn.fetch(all_words_sql(len(patterns)), CANDIDATES, *patterns))
    ranked = sorted(found.values(), key=lambda r: pl.rank_key(key, r["name_key"], list(r["alias_keys"]),
                                                               pl.normalise(r["address"]), r["sim"]))
    return [_row_place(r).view() for r in ranked[:limit]]
