"""Bytes answered gzipped when the client accepts it, with a strong ETag: for the viewer's big payloads.

Agents in the field are on slow, metered connections: MapLibre's script
(~1 MB) and the map's point set (several MB for 100,000 alerts) shrink
3-5 times with gzip. Compressed copies are kept by ETag (a hash of the
plain bytes), so a payload is compressed once however often it is served.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict

from flask import Response, request

#: Below this size gzip saves too little to be worth a header.
MIN_SIZE = 1024
#: Compressed payloads kept (the vendor files, a few point sets, the context layers).
CACHE_ENTRIES = 32
GZIP_LEVEL = 6

_gzipped: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def etag_of(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:32]


def _gzip(etag: str, payload: bytes) -> bytes:
    with _lock:
        cached = _gzipped.get(etag)
        if cached is not None:
            _gzipped.move_to_end(etag)
            return cached
    packed = gzip.compress(payload, compresslevel=GZIP_LEVEL, mtime=0)
    with _lock:
        _gzipped[etag] = packed
        while len(_gzipped) > CACHE_ENTRIES:
            _gzipped.popitem(last=False)
    return packed


def bytes_response(payload: bytes, mimetype: str, *, etag: str | None = None,
                   cache_control: str = "private, no-cache", gzipped: bytes | None = None) -> Response:
    """``payload`` with an ETag (304 when it matches ``If-None-Match``), gzipped when accepted.

    ``gzipped``: the payload already compressed by the caller (who keeps it), used as is.
    """
    etag = etag or etag_of(payload)
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    elif len(payload) >= MIN_SIZE and "gzip" in request.accept_encodings:
        response = Response(gzipped if gzipped is not None else _gzip(etag, payload), mimetype=mimetype)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(payload, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = cache_control
    return response
