"""A point written the ways field GPS units and phones read it: decimal degrees, DMS, a geo: URI, UTM.

Agents copy an alert's position into a Garmin, a phone's maps app or a paper
form; each wants its own notation, and a mistyped hemisphere sends a patrol
to the wrong side of the equator (Ecuador straddles it). So the notations
are computed here once, from WGS84 lon/lat, and the viewer only shows them.
UTM uses the zone the point lies in (17 or 18 in mainland Ecuador) with
pyproj, never a hand-rolled series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from pyproj import Transformer

from geo_monitor.errors import InvalidInputError

__all__ = ["PointNotations", "UTMPosition", "notations", "to_dms", "to_utm"]


@dataclass(frozen=True)
class UTMPosition:
    zone: int
    band: str  # latitude band letter (C..X): M just south of the equator, N just north
    hemisphere: str  # "N" or "S"
    easting: float  # metres
    northing: float  # metres (southern hemisphere: false northing 10,000 km)
    epsg: int

    @property
    def text(self) -> str:
        """As GPS units show it, zone and latitude band: ``17M 812345 9887654``.

        The band letter, not the hemisphere, follows the zone: "17S" would be
        band S, in the northern hemisphere, a classic field mistake.
        """
        return f"{self.zone}{self.band} {self.easting:.0f} {self.northing:.0f}"


@dataclass(frozen=True)
class PointNotations:
    lon: float
    lat: float
    decimal: str  # "-1.023450, -77.612340" (lat, lon: the order phones and GPS units expect)
    dms: str  # 1°01'24.4"S 77°36'44.4"W
    geo_uri: str  # RFC 5870 geo:lat,lon
    utm: UTMPosition


def _check(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -80 <= lat <= 84):
        raise InvalidInputError(f"not a longitude/latitude inside the UTM range: {lon!r}, {lat!r}")


def to_dms(value: float, *, is_lat: bool) -> str:
    """Degrees, minutes, seconds (0.1") with the hemisphere letter: ``77°36'44.4"W``."""
    letter = ("N" if value >= 0 else "S") if is_lat else ("E" if value >= 0 else "W")
    tenths = round(abs(value) * 36000)  # whole tenths of a second: no 60.0" from rounding
    degrees, rest = divmod(tenths, 36000)
    minutes, tenth_seconds = divmod(rest, 600)
    return f"{degrees}°{minutes:02d}'{tenth_seconds / 10:04.1f}\"{letter}"


#: Latitude bands of 8° from 80°S (X spans 72..84°N); I and O are skipped.
_BANDS = "CDEFGHJKLMNPQRSTUVWX"


@lru_cache(maxsize=8)
def _utm_transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def to_utm(lon: float, lat: float) -> UTMPosition:
    """The point in its own UTM zone (WGS84, EPSG:326xx north / 327xx south)."""
    _check(lon, lat)
    zone = min(int((lon + 180) // 6) + 1, 60)
    south = lat < 0
    epsg = (32700 if south else 32600) + zone
    easting, northing = _utm_transformer(epsg).transform(lon, lat)
    band = _BANDS[min(int((lat + 80) // 8), len(_BANDS) - 1)]
    return UTMPosition(zone=zone, band=band, hemisphere="S" if south else "N", easting=easting, northing=northing,
                       epsg=epsg)


def notations(lon: float, lat: float) -> PointNotations:
    """Every notation of one WGS84 point."""
    _check(lon, lat)
    return PointNotations(
        lon=lon,
        lat=lat,
        decimal=f"{lat:.6f}, {lon:.6f}",
        dms=f"{to_dms(lat, is_lat=True)} {to_dms(lon, is_lat=False)}",
        geo_uri=f"geo:{lat:.6f},{lon:.6f}",
        utm=to_utm(lon, lat),
    )
