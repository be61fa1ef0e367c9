"""The pages and their static files: revalidated by ETag, compressed when the client takes gzip.

The files change on deploy without a build step (no content hash in their URLs), so a long
max-age would keep last release's JS beside this release's HTML. Every response says
`Cache-Control: no-cache` with a strong ETag instead: the browser keeps its copy and asks
each time, and an unchanged file costs a 304 with no body.

Files are read once per (path, mtime, size) and kept in memory with their gzip form: the
pages are a few hundred KiB in all, and compressing them on every request would cost more
CPU than serving them.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from infra.errors import NotFound

COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml", "application/geo+json")
MIN_COMPRESS = 1024       # smaller bodies gain less than the header costs


@dataclass(frozen=True)
class _File:
    stamp: tuple[int, int]
    body: bytes
    gz: bytes | None
    etag: str
    content_type: str


class StaticFiles:
    """Files under `root`, served from memory, refreshed when a file changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, _File] = {}

    def _load(self, path: Path) -> _File:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        body = path.read_bytes()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype == "text/javascript":
            ctype = "application/javascript"
        gz = None
        if ctype.startswith(COMPRESSIBLE) and len(body) >= MIN_COMPRESS:
            gz = gzip.compress(body, compresslevel=9, mtime=0)
        f = _File(stamp, body, gz, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', ctype)
        self._cache[path] = f
        return f

    def resolve(self, relative: str) -> Path:
        """The file under root, or NotFound (no escaping root, no hidden files, no directories)."""
        if "\x00" in relative or any(part.startswith(".") for part in Path(relative).parts):
            raise NotFound("no such file")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise NotFound("no such file")
        return path

    def response(self, request: web.Request, relative: str) -> web.Response:
        f = self._load(self.resolve(relative))
        headers = {"ETag": f.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if f.etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers=headers)
        body = f.body
        if f.gz is not None and accepts_gzip(request):
            body = f.gz
            headers["Content-Encoding"] = "gzip"
        resp = web.Response(body=body, headers=headers)
        resp.content_type = f.content_type
        if f.content_type.startswith("text/"):
            resp.charset = "utf-8"
        return resp


def accepts_gzip(request: web.Request) -> bool:
    for item in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def compress_json(request: web.Request, resp: web.StreamResponse) -> None:
    """Gzip a JSON answer of some size (incident timelines, snapshots) when the client takes it."""
    if (type(resp) is web.Response and resp.body is not None and resp.status != 304
            and isinstance(resp.body, bytes) and len(resp.body) >= MIN_COMPRESS
            and (resp.content_type or "").startswith(COMPRESSIBLE)
            and "Content-Encoding" not in resp.headers and accepts_gzip(request)):
        resp.enable_compression(web.ContentCoding.gzip)
        resp.headers["Vary"] = "Accept-Encoding"
