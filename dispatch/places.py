"""The gazetteer's rules, without I/O: reading a place file row by row, stable ids, and how a search ranks.

A file is CSV (`name,address,lat,lon[,aliases]`, an optional `id` column, aliases `|`-separated; a header
row names the columns, or they are in that order) or GeoJSON (Point features; `properties.name`,
`address`, `aliases` as a list or a `|` string, the id from `properties.id` or the feature's `id`).
Every row is judged alone: a bad one is reported by its line (CSV) or feature index (GeoJSON) and
skipped, the others go in (dispatch/places_store.py writes each row whole or not at all).

A place's stable id is the file's own `id`, else `p-` + a hash of its normalised name and address: the
same place in a later file updates the row instead of adding another.

Search (`places.search`, `GET /api/places`): the query is normalised like the stored text (NFKC,
lower case, single spaces) and matched against name, aliases and address. Ranking, best first:

    0  the name or an alias is the query
    1  the name or an alias starts with it
    2  the name or an alias contains it
    3  the address contains it
    4  only after correcting a typo

within a tier a match in the name before one in an alias, then the shorter name.
A query holding two adjacent CJK characters is matched through the stored CJK bigrams and a substring
test (whatever the database's locale); other queries of three or more characters through pg_trgm
(substring); shorter ones ("医", "li") match the start of a name or alias only: anything more would be
most of the city. A typo is looked for only when nothing matched as typed, the way pg_trgm's manual
suggests: each word of the query that is not a word of any place's name or aliases is replaced by the
most similar one that is (the vocabulary `place_words`, a few thousand rows however many places), and
the places holding every corrected word are the answer.
Substring matches are read up to places_store.CANDIDATES, then ranked.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

NAME_MAX, ADDRESS_MAX, ALIAS_MAX, ALIASES_MAX, ID_MAX = 200, 300, 100, 20, 64
QUERY_MAX = 100
LIMIT_DEFAULT, LIMIT_MAX = 10, 50
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
COLUMNS = ("name", "address", "lat", "lon", "aliases")
_SPACE = re.compile(r"\s+")


class Tier:
    EXACT, PREFIX, CONTAINS, ADDRESS, SIMILAR = range(5)


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    address: str
    lat: float
    lon: float
    aliases: tuple[str, ...] = ()

    @property
    def name_key(self) -> str:
        return normalise(self.name)

    @property
    def alias_keys(self) -> list[str]:
        return [normalise(a) for a in self.aliases]

    @property
    def names(self) -> str:
        """Name and aliases in one normalised text (a typo is looked for there)."""
        return " | ".join([self.name_key, *self.alias_keys])

    @property
    def words(self) -> list[str]:
        """The words of the name and aliases a typo can be corrected to (words_of)."""
        return words_of(" ".join([self.name_key, *self.alias_keys]))

    @property
    def search(self) -> str:
        """Name, aliases and address in one normalised text (what the trigram index holds)."""
        return " | ".join([self.name_key, *self.alias_keys, normalise(self.address)])

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "address": self.address, "lat": self.lat, "lon": self.lon}


@dataclass(frozen=True)
class RowError:
    where: int          # CSV line number (1-based), or GeoJSON feature index (0-based)
    message: str


@dataclass(frozen=True)
class Parsed:
    places: list[tuple[int, Place]]
    errors: list[RowError]
    unit: str           # "line" or "feature"


class FileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, not JSON, no FeatureCollection)."""


def normalise(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2FA1F
            or 0xF900 <= o <= 0xFAFF or 0x3040 <= o <= 0x30FF or 0xAC00 <= o <= 0xD7AF)


def grams(text: str) -> list[str]:
    """The CJK characters of a text and each pair of adjacent ones, sorted, without repeats."""
    out: set[str] = set()
    prev = ""
    for ch in text:
        if is_cjk(ch):
            out.add(ch)
            if prev:
                out.add(prev + ch)
            prev = ch
        else:
            prev = ""
    return sorted(out)


_WORD = re.compile(r"[^\W_]+")
WORD_MIN = 3


def words_of(text: str) -> list[str]:
    """The words of a normalised text that a typo stage looks up: letters or digits, at least WORD_MIN long,
    no CJK (Chinese is matched by its characters, not by words) and not only digits (a house number is
    never "corrected" to another), each once, in order."""
    out = [w for w in _WORD.findall(text)
           if len(w) >= WORD_MIN and not w.isdigit() and not any(is_cjk(ch) for ch in w)]
    return list(dict.fromkeys(out))


def corrected(key: str, fixes: dict[str, str]) -> str:
    """The query with each word replaced by its correction (a word without one stays as typed)."""
    return _WORD.sub(lambda m: fixes.get(m.group(0), m.group(0)), key)


def stable_id(name: str, address: str) -> str:
    digest = hashlib.sha1(f"{normalise(name)}\x1f{normalise(address)}".encode()).hexdigest()
    return "p-" + digest[:16]


def _number(raw: Any, what: str, lo: float, hi: float) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{what} must be a number")
    try:
        v = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, not {str(raw)[:20]!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{what} must be between {lo:g} and {hi:g}")
    return v


def make_place(fields: dict[str, Any]) -> Place:
    """A place from one row's fields; ValueError saying what is wrong."""
    name = _SPACE.sub(" ", str(fields.get("name") or "")).strip()     # a line break in a field is a space
    if not name:
        raise ValueError("name is empty")
    if len(name) > NAME_MAX:
        raise ValueError(f"name is longer than {NAME_MAX} characters")
    address = _SPACE.sub(" ", str(fields.get("address") or "")).strip()
    if len(address) > ADDRESS_MAX:
        raise ValueError(f"address is longer than {ADDRESS_MAX} characters")
    for text in (name, address):
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise ValueError("control characters are not allowed")
    if fields.get("lat") in (None, "") or fields.get("lon") in (None, ""):
        raise ValueError("lat and lon are required")
    lat = _number(fields["lat"], "lat", -90, 90)
    lon = _number(fields["lon"], "lon", -180, 180)
    raw = fields.get("aliases") or []
    if isinstance(raw, str):
        raw = raw.split("|")
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise ValueError("aliases must be text separated by |, or a list of text")
    aliases = tuple(dict.fromkeys(a.strip() for a in raw if a.strip()))
    if len(aliases) > ALIASES_MAX:
        raise ValueError(f"more than {ALIASES_MAX} aliases")
    if any(len(a) > ALIAS_MAX or any(unicodedata.category(c) == "Cc" for c in a) for a in aliases):
        raise ValueError(f"an alias is longer than {ALIAS_MAX} characters or holds control characters")
    pid = fields.get("id")
    if pid in (None, ""):
        pid = stable_id(name, address)
    elif not ID_RE.match(str(pid)):
        raise ValueError(f"id must be 1-{ID_MAX} letters, digits, _ . : -")
    return Place(str(pid), name, address, lat, lon, aliases)


def _keep(out: Parsed, seen: dict[str, int], where: int, place: Place) -> None:
    first = seen.get(place.id)
    if first is not None:
        out.errors.append(RowError(where, f"the same place (id {place.id}) as {out.unit} {first}"))
        return
    seen[place.id] = where
    out.places.append((where, place))


def parse_csv(text: str) -> Parsed:
    out = Parsed([], [], "line")
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    columns: list[str] | None = None
    start = 0
    for row in reader:
        line = start + 1            # the line the record starts on (a quoted field may span lines)
        start = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if columns is None:
            heads = [c.strip().lower() for c in row]
            if "name" in heads and "lat" in heads and "lon" in heads:
                unknown = [h for h in heads if h not in (*COLUMNS, "id")]
                if unknown:
                    raise FileError(f"line {line}: unknown column(s) {', '.join(unknown)}")
                columns = heads
                continue
            columns = list(COLUMNS)
        if len(row) > len(columns):
            out.errors.append(RowError(line, f"{len(row)} fields, expected at most {len(columns)}"))
            continue
        try:
            _keep(out, seen, line, make_place(dict(zip(columns, row))))
        except ValueError as e:
            out.errors.append(RowError(line, str(e)))
    return out


def parse_geojson(text: str) -> Parsed:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileError(f"not JSON: {e}") from None
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = {"type": "FeatureCollection", "features": [doc]}
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        raise FileError("GeoJSON must be a FeatureCollection of Point features")
    out = Parsed([], [], "feature")
    seen: dict[str, int] = {}
    for i, feat in enumerate(doc["features"]):
        try:
            if not isinstance(feat, dict) or feat.get("type") != "Feature":
                raise ValueError("not a Feature")
            geom = feat.get("geometry")
            if not isinstance(geom, dict) or geom.get("type") != "Point":
                raise ValueError("geometry must be a Point")
            coords = geom.get("coordinates")
            if not isinstance(coords, list) or len(coords) < 2:
                raise ValueError("a Point needs [lon, lat]")
            props = feat.get("properties") or {}
            if not isinstance(props, dict):
                raise ValueError("properties must be an object")
            pid = props.get("id", feat.get("id"))
            _keep(out, seen, i, make_place({**props, "id": None if pid is None else str(pid),
                                            "lon": coords[0], "lat": coords[1]}))
        except ValueError as e:
            out.errors.append(RowError(i, str(e)))
    return out


def parse(name: str, data: bytes) -> Parsed:
    """Read a file by its content: GeoJSON if it starts with `{`, else CSV."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileError(f"not UTF-8 text (byte {e.start})") from None
    if text.lstrip("\ufeff \t\r\n").startswith("{") or name.lower().endswith((".geojson", ".json")):
        return parse_geojson(text)
    return parse_csv(text)


# ---------------------------------------------------------------- search
@dataclass(frozen=True)
class Query:
    key: str                 # the normalised query
    mode: str                # "prefix" (1-2 characters), "cjk" (bigrams), "text" (trigrams)
    grams: tuple[str, ...]   # the CJK bigrams every match holds (mode "cjk")
    like: str                # the key with LIKE's wildcards escaped
    words: tuple[str, ...] = ()   # the words a typo stage may correct (mode "text")


def escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def plan_query(q: str) -> Query:
    key = normalise(q)[:QUERY_MAX]
    bigrams = tuple(g for g in grams(key) if len(g) == 2)
    mode = "cjk" if bigrams else "prefix" if len(key) < 3 else "text"
    return Query(key, mode, bigrams, escape_like(key), tuple(words_of(key)) if mode == "text" else ())


def check_limit(limit: int | None) -> int:
    if limit is None:
        return LIMIT_DEFAULT
    return max(1, min(int(limit), LIMIT_MAX))


def tier(key: str, name_key: str, alias_keys: list[str], address_key: str) -> int:
    names = [name_key, *alias_keys]
    if key in names:
        return Tier.EXACT
    if any(n.startswith(key) for n in names):
        return Tier.PREFIX
    if any(key in n for n in names):
        return Tier.CONTAINS
    if key in address_key:
        return Tier.ADDRESS
    return Tier.SIMILAR


def rank_key(key: str, name_key: str, alias_keys: list[str], address_key: str,
             similarity: float) -> tuple[int, bool, float, int, str]:
    """Sort key of a match: lower is better (module docstring); within a tier the name before an alias."""
    return (tier(key, name_key, alias_keys, address_key), key not in name_key, -similarity, len(name_key), name_key)
