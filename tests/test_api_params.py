"""Query-parameter parsing of the alerts APIs, without Flask: every bad input is a ParameterError naming it."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from geo_monitor.alerts import Status
from web.params import (
    MAX_LIMIT,
    DateRange,
    ParameterError,
    check_known,
    decode_cursor,
    encode_cursor,
    parse_bbox_param,
    parse_datetime_interval,
    parse_enum_list,
    parse_instant,
    parse_limit,
    parse_offset,
    parse_text_list,
    single,
)

KEY = b"k" * 32


def _fails(parameter: str, call, *args, **kwargs) -> str:
    with pytest.raises(ParameterError) as info:
        call(*args, **kwargs)
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: ")
    return str(info.value)


def test_bbox_in_ecuador_and_ogc_3d_form() -> None:
    assert parse_bbox_param("-77.7,-1.1,-77.5,-0.9") == (-77.7, -1.1, -77.5, -0.9)
    assert parse_bbox_param("-77.7,-1.1,0,-77.5,-0.9,100") == (-77.7, -1.1, -77.5, -0.9)
    # larger than the country is fine (a GIS client's whole view); it overlaps
    assert parse_bbox_param("-90,-20,-60,10") == (-90.0, -20.0, -60.0, 10.0)


@pytest.mark.parametrize(
    "text, words",
    [
        ("nan,-1,-77,0", "finite"),
        ("-78,-1,inf,0", "finite"),
        ("-77,-1,-78,0", "W < E"),
        ("-78,0,-77,-1", "S < N"),
        ("-78,-1,-77", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("-200,-1,-77,0", "longitude/latitude"),
        ("10,40,11,41", "does not overlap Ecuador"),
        ("", "four numbers"),
    ],
)
def test_bad_bbox(text: str, words: str) -> None:
    assert words in _fails("bbox", parse_bbox_param, text)


def test_bbox_outside_ecuador_is_allowed_where_asked() -> None:
    assert parse_bbox_param("10,40,11,41", require_ecuador=False) == (10.0, 40.0, 11.0, 41.0)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-02-01", DateRange(date(2024, 2, 1), date(2024, 2, 1))),
        ("2024-02-01T23:30:00-05:00", DateRange(date(2024, 2, 2), date(2024, 2, 2))),  # UTC day
        ("2024-02-01/2024-03-01", DateRange(date(2024, 2, 1), date(2024, 3, 1))),
        ("../2024-03-01", DateRange(None, date(2024, 3, 1))),
        ("2024-02-01/..", DateRange(date(2024, 2, 1), None)),
        ("/2024-03-01", DateRange(None, date(2024, 3, 1))),
        ("2024-02-01T00:00:00Z/2024-02-03T12:00:00Z", DateRange(date(2024, 2, 1), date(2024, 2, 3))),
    ],
)
def test_datetime_intervals(text: str, expected: DateRange) -> None:
    assert parse_datetime_interval(text) == expected


@pytest.mark.parametrize(
    "text, words",
    [
        ("2024-03-01/2024-02-01", "after it ends"),
        ("2024-13-01", "not a date"),
        ("yesterday", "RFC 3339"),
        ("..", "not '..'"),
        ("2024-01-01/2024-02-01/2024-03-01", "neither"),
        ("2024-02-01T10:00:00/..", "no timezone"),
    ],
)
def test_bad_datetime(text: str, words: str) -> None:
    assert words in _fails("datetime", parse_datetime_interval, text)


def test_updated_since_is_an_aware_instant() -> None:
    assert parse_instant("2024-03-01T12:00:00Z", "updated_since") == datetime(2024, 3, 1, 12, tzinfo=timezone.utc)
    assert parse_instant("2024-03-01T07:00:00-05:00", "updated_since") == datetime(
        2024, 3, 1, 12, tzinfo=timezone.utc
    )
    assert parse_instant("2024-03-01", "updated_since") == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert "no timezone" in _fails("updated_since", parse_instant, "2024-03-01T12:00:00", "updated_since")
    _fails("updated_since", parse_instant, "last tuesday", "updated_since")


def test_enum_lists_comma_separated_and_repeated() -> None:
    assert parse_enum_list({"status": ["new,under_review", "confirmed"]}, "status", Status) == {
        "new",
        "under_review",
        "confirmed",
    }
    assert parse_enum_list({}, "status", Status) is None
    message = _fails("status", parse_enum_list, {"status": ["new,open"]}, "status", Status)
    assert "open" in message and "under_review" in message
    _fails("status", parse_enum_list, {"status": [" , "]}, "status", Status)
    assert parse_text_list({"province": ["Napo, Zamora Chinchipe"]}, "province") == {"Napo", "Zamora Chinchipe"}
    _fails("province", parse_text_list, {"province": [",".join(str(i) for i in range(60))]}, "province")


def test_limit_and_offset() -> None:
    assert parse_limit(None) == 100
    assert parse_limit("1") == 1 and parse_limit(str(MAX_LIMIT)) == MAX_LIMIT
    assert parse_limit("5000", clamp=True) == MAX_LIMIT  # OGC: too large is the maximum, not an error
    for bad in ("0", "-1", "1001", "ten", "1.5", "", "99999999999999999999", "١٢"):
        _fails("limit", parse_limit, bad)
    assert parse_offset("20") == 20
    _fails("offset", parse_offset, "-1")


def test_single_valued_parameters_and_unknown_ones() -> None:
    assert single({"limit": ["5"]}, "limit") == "5"
    assert single({}, "limit") is None
    _fails("limit", single, {"limit": ["5", "6"]}, "limit")
    _fails("bbox", single, {"bbox": ["1" * 3000]}, "bbox")
    message = _fails("colour", check_known, ["bbox", "colour"], ["bbox", "limit"])
    assert "bbox, limit" in message
    check_known(["bbox"], ["bbox", "limit"])


def test_cursor_round_trip_and_forgery() -> None:
    position = (datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), "gm-0000000000000001")
    cursor = encode_cursor(position, KEY)
    assert decode_cursor(cursor, KEY) == position
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # URL-safe as is
    # signed with another key, edited payload, garbage: all refused
    assert "bad signature" in _fails("cursor", decode_cursor, cursor, b"x" * 32)
    body, mac = cursor.split(".")
    forged = encode_cursor((position[0], "gm-ffffffffffffffff"), KEY).split(".")[0] + "." + mac
    _fails("cursor", decode_cursor, forged, KEY)
    for junk in ("", "abc", "a.b.c", "!!!.???", "x" * 600, cursor + "x"):
        _fails("cursor", decode_cursor, junk, KEY)
