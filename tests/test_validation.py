"""Validation of user-given bboxes and dates: what every entry point accepts and rejects."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

import pytest

from geo_monitor.errors import InvalidInputError
from geo_monitor.validation import (
    ECUADOR_BBOX,
    check_bbox_in_ecuador,
    check_date_range,
    parse_bbox,
    parse_date,
    utc_day_bounds,
)

PUNINO = (-77.6, -1.1, -77.4, -0.9)


@pytest.mark.parametrize(
    "given",
    [
        "-77.6,-1.1,-77.4,-0.9",
        " -77.6 , -1.1 , -77.4 , -0.9 ",
        "-77.6,-1.1,-77.4,-9e-1",
        [-77.6, -1.1, -77.4, -0.9],
        (-77.6, -1.1, -77.4, -0.9),
        ["-77.6", "-1.1", "-77.4", "-0.9"],
    ],
)
def test_parse_bbox_variants(given: object) -> None:
    assert parse_bbox(given) == PUNINO  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ("-77.6,-1.1,-77.4", "four numbers"),
        ("-77.6,-1.1,-77.4,-0.9,0", "four numbers"),
        ("west,-1.1,-77.4,-0.9", "four numbers"),
        ("", "four numbers"),
        ([1.0, 2.0, 3.0], "four numbers"),
        ("-77.6,-1.1,nan,-0.9", "finite"),
        ("-77.6,-1.1,inf,-0.9", "finite"),
        ("232560,9900000,233200,9900760", "longitude/latitude"),
        ("-77.4,-1.1,-77.6,-0.9", "W < E"),
        ("-77.6,-0.9,-77.4,-1.1", "S < N"),
        ("-77.6,-1.1,-77.6,-0.9", "W < E"),
    ],
)
def test_parse_bbox_rejects(given: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_bbox(given)  # type: ignore[arg-type]


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_bbox("1,2")


@pytest.mark.parametrize(
    "bbox",
    [
        PUNINO,
        ECUADOR_BBOX,
        (-79.9, -2.2, -79.8, -2.1),  # Guayaquil
        (-78.7, -4.3, -78.6, -4.2),  # Nangaritza, UTM 17S
    ],
)
def test_bbox_inside_ecuador(bbox: tuple[float, float, float, float]) -> None:
    assert check_bbox_in_ecuador(bbox) == bbox


@pytest.mark.parametrize(
    "bbox",
    [
        (-74.1, 4.5, -74.0, 4.7),  # Bogotá
        (-77.1, -12.1, -77.0, -12.0),  # Lima
        (-90.5, -0.9, -90.2, -0.6),  # Galápagos: no mining, outside on purpose
        (-78.0, -1.0, -74.0, -0.5),  # straddles the Peruvian border
        (2.3, 48.8, 2.4, 48.9),
    ],
)
def test_bbox_outside_ecuador(bbox: tuple[float, float, float, float]) -> None:
    with pytest.raises(InvalidInputError, match="outside Ecuador"):
        check_bbox_in_ecuador(bbox)


def test_parse_date_forms() -> None:
    assert parse_date("2024-03-05") == date(2024, 3, 5)
    assert parse_date(" 2024-03-05 ") == date(2024, 3, 5)
    assert parse_date(date(2024, 3, 5)) == date(2024, 3, 5)
    assert parse_date(datetime(2024, 3, 5, 23, 59)) == date(2024, 3, 5)


@pytest.mark.parametrize("text", ["2024-02-30", "2024-13-01", "05/03/2024", "yesterday", "", "2024-3"])
def test_parse_date_rejects_with_the_option_name(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"--start must be an ISO date YYYY-MM-DD"):
        parse_date(text, "--start")


def test_parse_date_rejects_non_text() -> None:
    with pytest.raises(InvalidInputError):
        parse_date(None)  # type: ignore[arg-type]


def test_date_range() -> None:
    same = date(2024, 1, 1)
    assert check_date_range(same, same) == (same, same)
    assert check_date_range(date(2023, 6, 1), date(2024, 12, 31)) == (date(2023, 6, 1), date(2024, 12, 31))
    with pytest.raises(InvalidInputError, match="start date 2024-02-01 is after end date 2024-01-31"):
        check_date_range(date(2024, 2, 1), date(2024, 1, 31))


def test_utc_day_bounds_cover_whole_days() -> None:
    lo, hi = utc_day_bounds(date(2024, 1, 5), date(2024, 1, 6))
    assert lo == datetime(2024, 1, 5, tzinfo=timezone.utc)
    assert hi.date() == date(2024, 1, 6) and hi.tzinfo == timezone.utc
    assert math.isclose((hi - lo).total_seconds(), 2 * 86400, abs_tol=1e-3)
