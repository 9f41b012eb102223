"""Notations of a point for field GPS units and phones (geo_monitor.coordinates)."""

from __future__ import annotations

import math

import pytest
from pyproj import Transformer

from geo_monitor.coordinates import notations, to_dms, to_utm
from geo_monitor.errors import InvalidInputError


def test_dms_of_a_point_south_and_west() -> None:
    # -1.0234° = 1° 1' 24.24" -> 24.2"; -77.6123° = 77° 36' 44.28" -> 44.3"
    assert to_dms(-1.0234, is_lat=True) == "1°01'24.2\"S"
    assert to_dms(-77.6123, is_lat=False) == "77°36'44.3\"W"
    assert to_dms(0.5, is_lat=True) == "0°30'00.0\"N"


def test_dms_never_shows_sixty_seconds() -> None:
    # 59.99999" rounds up into the next minute, not to 60.0"
    assert to_dms(1 + 59 / 60 + 59.99999 / 3600, is_lat=True) == "2°00'00.0\"N"


@pytest.mark.parametrize(
    ("lon", "lat", "zone", "band", "hemisphere"),
    [
        (-77.62, -1.02, 18, "M", "S"),  # Río Punino (Napo): zone 18, just south of the equator
        (-78.9, -3.9, 17, "M", "S"),  # Zamora Chinchipe (Nambija) is in zone 17
        (-79.7, 0.9, 17, "N", "N"),  # Esmeraldas, north of the equator
    ],
)
def test_utm_zone_band_and_hemisphere(lon: float, lat: float, zone: int, band: str, hemisphere: str) -> None:
    utm = to_utm(lon, lat)
    assert (utm.zone, utm.band, utm.hemisphere) == (zone, band, hemisphere)
    assert utm.epsg == (32700 if hemisphere == "S" else 32600) + zone
    # Back to lon/lat with an independent transformer: the same point to the centimetre.
    back_lon, back_lat = Transformer.from_crs(utm.epsg, 4326, always_xy=True).transform(utm.easting, utm.northing)
    assert math.isclose(back_lon, lon, abs_tol=1e-7) and math.isclose(back_lat, lat, abs_tol=1e-7)
    assert utm.text == f"{zone}{band} {utm.easting:.0f} {utm.northing:.0f}"


def test_southern_northing_uses_the_false_northing() -> None:
    assert 9_000_000 < to_utm(-77.62, -1.02).northing < 10_000_000


def test_all_notations_of_one_point() -> None:
    place = notations(-77.612345, -1.023456)
    assert place.decimal == "-1.023456, -77.612345"  # lat first, as phones and GPS units take it
    assert place.geo_uri == "geo:-1.023456,-77.612345"  # RFC 5870
    assert place.dms.endswith("W") and "S " in place.dms


@pytest.mark.parametrize(("lon", "lat"), [(float("nan"), 0.0), (0.0, float("inf")), (200.0, 0.0), (0.0, 85.0)])
def test_bad_points_are_refused(lon: float, lat: float) -> None:
    with pytest.raises(InvalidInputError):
        notations(lon, lat)
