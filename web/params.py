"""Query parameters of the alerts APIs, parsed once into typed values (no Flask here).

Every function takes the raw strings a client sent and either returns a typed
value or raises :class:`ParameterError` naming the parameter and saying what
is wrong, which the web layer answers with a 400 problem. Names are the ones
partners already know from OGC API - Features and STAC: ``bbox``,
``datetime``, ``limit``, ``offset``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import Enum
from typing import Final

from geo_monitor.errors import InvalidInputError
from geo_monitor.types import BBox
from geo_monitor.validation import ECUADOR_BBOX, parse_bbox

#: Largest page; more than this is refused in /api/v1 and clamped in /ogc (as OGC API - Features asks).
MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
#: Longest value of any one parameter: bounds the work spent on hostile input.
MAX_VALUE_LENGTH: Final = 2000
#: Most values in one comma-separated list.
MAX_LIST_ITEMS: Final = 50
#: Bytes of HMAC-SHA256 kept in a cursor: 128 bits cannot be guessed.
CURSOR_MAC_BYTES: Final = 16


class ParameterError(InvalidInputError):
    """A query parameter the client sent is not acceptable; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True)
class DateRange:
    """Inclusive first/last day; ``None`` is an open end."""

    start: date | None
    end: date | None


def check_known(names: Iterable[str], allowed: Iterable[str]) -> None:
    """Refuse parameters the endpoint does not know: a typo must not silently widen a query."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ParameterError(
            unknown[0],
            f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
        )


def single(args: Mapping[str, list[str]], name: str) -> str | None:
    """The one value of ``name``; repeating a single-valued parameter is an error, not a guess."""
    values = args.get(name) or []
    if not values:
        return None
    if len(values) > 1:
        raise ParameterError(name, "given more than once")
    value = values[0]
    if len(value) > MAX_VALUE_LENGTH:
        raise ParameterError(name, f"longer than {MAX_VALUE_LENGTH} characters")
    return value


def parse_bbox_param(text: str, *, require_ecuador: bool = True, name: str = "bbox") -> BBox:
    """``W,S,E,N`` (or OGC's 6-number ``W,S,zmin,E,N,zmax``) in CRS84 degrees.

    With ``require_ecuador`` the box must overlap mainland Ecuador: a query
    elsewhere is certainly a mistake. A box larger than the country is fine
    (a GIS client sends its whole map view).
    """
    parts = text.split(",")
    if len(parts) == 6:  # 3D bbox: the heights do not matter for footprints on the ground
        parts = [parts[0], parts[1], parts[3], parts[4]]
    try:
        bbox = parse_bbox(",".join(parts))
    except InvalidInputError as exc:
        raise ParameterError(name, str(exc).removeprefix("bbox ").removeprefix("bbox: ")) from None
    if require_ecuador and not _overlaps(bbox, ECUADOR_BBOX):
        w, s, e, n = ECUADOR_BBOX
        raise ParameterError(name, f"{text} does not overlap Ecuador ({w:g},{s:g},{e:g},{n:g})")
    return bbox


def _overlaps(a: BBox, b: BBox) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def parse_instant(text: str, name: str) -> datetime:
    """An RFC 3339 date-time with an offset (``Z`` or ``±hh:mm``), or a date meaning its UTC midnight."""
    value = text.strip()
    if "T" not in value.upper() and len(value) == 10:
        day = _parse_day(value, name)
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    try:
        instant = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            name, f"{text!r} is not an RFC 3339 date-time such as 2024-03-01T12:00:00Z or a date YYYY-MM-DD"
        ) from None
    if instant.tzinfo is None:
        raise ParameterError(name, f"{text!r} has no timezone; add Z or an offset such as -05:00")
    return instant.astimezone(timezone.utc)


def _parse_day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ParameterError(name, f"{text!r} is not a date YYYY-MM-DD") from None


def _bound(text: str, name: str) -> date | None:
    """One end of an interval as a UTC day; ``..`` or empty is open."""
    value = text.strip()
    if value in ("", ".."):
        return None
    if "T" in value.upper():
        return parse_instant(value, name).date()
    return _parse_day(value, name)


def parse_datetime_interval(text: str, name: str = "datetime") -> DateRange:
    """RFC 3339 instant or interval (``a/b``, ``../b``, ``a/..``) as inclusive UTC days.

    ``first_detected`` is a day, so an instant selects its UTC day and an
    interval every day it touches.
    """
    pieces = text.split("/")
    if len(pieces) == 1:
        day = _bound(pieces[0], name)
        if day is None:
            raise ParameterError(name, "a single value must be a date or date-time, not '..'")
        return DateRange(day, day)
    if len(pieces) != 2:
        raise ParameterError(name, f"{text!r} is neither an instant nor an interval start/end")
    start, end = _bound(pieces[0], name), _bound(pieces[1], name)
    if start is not None and end is not None and start > end:
        raise ParameterError(name, f"interval starts ({start}) after it ends ({end})")
    return DateRange(start, end)


def parse_enum_list(args: Mapping[str, list[str]], name: str, enum_cls: type[Enum]) -> frozenset[str] | None:
    """Comma-separated (and/or repeated) values of an enumeration; unknown values are an error."""
    values = parse_text_list(args, name)
    if values is None:
        return None
    allowed = {member.value for member in enum_cls}
    wrong = sorted(values - allowed)
    if wrong:
        raise ParameterError(name, f"unknown value(s) {', '.join(wrong)}; allowed: {', '.join(sorted(allowed))}")
    return values


def parse_text_list(args: Mapping[str, list[str]], name: str) -> frozenset[str] | None:
    """Comma-separated (and/or repeated) free-text values such as province names."""
    raw = args.get(name) or []
    if not raw:
        return None
    if sum(len(v) for v in raw) > MAX_VALUE_LENGTH:
        raise ParameterError(name, f"longer than {MAX_VALUE_LENGTH} characters")
    values = frozenset(part.strip() for value in raw for part in value.split(",") if part.strip())
    if not values:
        raise ParameterError(name, "is empty; leave it out to get every value")
    if len(values) > MAX_LIST_ITEMS:
        raise ParameterError(name, f"more than {MAX_LIST_ITEMS} values")
    return values


def parse_limit(text: str | None, *, clamp: bool = False, default: int = DEFAULT_LIMIT) -> int:
    """Page size 1..1000; above 1000 is an error, or 1000 with ``clamp`` (OGC's rule)."""
    if text is None:
        return default
    value = _integer(text, "limit")
    if value < 1:
        raise ParameterError("limit", f"must be at least 1; got {value}")
    if value > MAX_LIMIT:
        if clamp:
            return MAX_LIMIT
        raise ParameterError("limit", f"must be at most {MAX_LIMIT}; got {value}")
    return value


def parse_offset(text: str | None) -> int:
    if text is None:
        return 0
    value = _integer(text, "offset")
    if value < 0:
        raise ParameterError("offset", f"must be 0 or more; got {value}")
    return value


def _integer(text: str, name: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit() and not (value.startswith("-") and value[1:].isdigit()):
        raise ParameterError(name, f"must be an integer; got {text[:40]!r}")
    if len(value) > 12:
        raise ParameterError(name, "is far too large")
    return int(value)


def parse_format(text: str | None, choices: Iterable[str], default: str | None = None, name: str = "format") -> str:
    """One of ``choices`` (case-insensitive)."""
    options = tuple(choices)
    if text is None:
        if default is None:
            raise ParameterError(name, f"is required; one of {', '.join(options)}")
        return default
    value = text.strip().lower()
    if value not in options:
        raise ParameterError(name, f"must be one of {', '.join(options)}; got {text[:40]!r}")
    return value


# --- cursors ------------------------------------------------------------------


def encode_cursor(position: tuple[datetime, str], key: bytes) -> str:
    """Opaque, signed keyset position ``(updated_at, id)``: clients cannot forge or edit it."""
    updated_at, alert_id = position
    payload = json.dumps({"u": updated_at.astimezone(timezone.utc).isoformat(), "i": alert_id}, separators=(",", ":"))
    body = _b64(payload.encode())
    return f"{body}.{_b64(_mac(body, key))}"


def decode_cursor(text: str, key: bytes) -> tuple[datetime, str]:
    """The position in a cursor made by :func:`encode_cursor` with the same key, else a ParameterError."""
    if len(text) > 512 or text.count(".") != 1:
        raise ParameterError("cursor", "is not a cursor this server issued")
    body, mac = text.split(".")
    try:
        given = _unb64(mac)
    except ValueError:
        raise ParameterError("cursor", "is not a cursor this server issued") from None
    if not hmac.compare_digest(given, _mac(body, key)):
        raise ParameterError("cursor", "is not a cursor this server issued (bad signature)")
    try:
        data = json.loads(_unb64(body))
        updated_at = datetime.fromisoformat(data["u"])
        alert_id = data["i"]
    except (ValueError, KeyError, TypeError):
        raise ParameterError("cursor", "is malformed") from None
    if updated_at.tzinfo is None or not isinstance(alert_id, str):
        raise ParameterError("cursor", "is malformed")
    return updated_at, alert_id


def _mac(body: str, key: bytes) -> bytes:
    return hmac.new(key, b"cursor:" + body.encode(), hashlib.sha256).digest()[:CURSOR_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
