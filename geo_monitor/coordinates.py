"""A point's coordinates in the forms field GPS units and phones read: decimal degrees, DMS, UTM, a geo: URI.

Agents copy these from an evidence sheet into a handheld GPS (most take
degrees-minutes-seconds or UTM) or tap the ``geo:`` link on a phone, which
opens the phone's own map app (RFC 5870), with no outside service involved.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyproj import Transformer

from geo_monitor.errors import InvalidInputError
from geo_monitor.loading import utm_epsg_for

__all__ = ["FieldCoordinates", "field_coordinates", "dms", "latitude_band"]

#: UTM/MGRS latitude bands, 8° each from 80°S (I and O are skipped; X spans 72-84°N).
_BANDS = "CDEFGHJKLMNPQRSTUVWX"


@dataclass(frozen=True)
class FieldCoordinates:
    lon: float
    lat: float
    decimal: str  # "-0.987650, -77.493950" (lat, lon: the order phones and GPS units expect)
    dms: str  # 0°59'15.5"S 77°29'38.2"W
    utm: str  # 18M 222440 9890800 (zone + latitude band as GPS units show it, easting, northing in metres)
    utm_epsg: int
    geo_uri: str  # geo:-0.98765,-77.49395


def dms(value: float, positive: str, negative: str) -> str:
    """Degrees, minutes and seconds (0.1") with a hemisphere letter."""
    hemisphere = positive if value >= 0 else negative
    total = round(abs(value) * 36000)  # tenths of a second, rounded once so 59.99" never shows as 60.0"
    degrees, rest = divmod(total, 36000)
    minutes, tenths = divmod(rest, 600)
    return f"{degrees}°{minutes:02d}'{tenths / 10:04.1f}\"{hemisphere}"


def latitude_band(lat: float) -> str:
    """The latitude band letter GPS units print after the UTM zone (Ecuador: M south of the equator, N north)."""
    if not -80.0 <= lat <= 84.0:
        raise InvalidInputError(f"latitude {lat} is outside the UTM bands (80°S..84°N)")
    return _BANDS[min(int((lat + 80.0) // 8), len(_BANDS) - 1)]


def field_coordinates(lon: float, lat: float) -> FieldCoordinates:
    """Every field form of the point (lon, lat) in EPSG:4326 degrees."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InvalidInputError(f"({lon}, {lat}) is not a longitude/latitude pair")
    epsg = utm_epsg_for(lon, lat)
    easting, northing = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    zone = epsg % 100
    return FieldCoordinates(
        lon=lon,
        lat=lat,
        decimal=f"{lat:.6f}, {lon:.6f}",
        dms=f"{dms(lat, 'N', 'S')} {dms(lon, 'E', 'W')}",
        utm=f"{zone}{latitude_band(lat)} {easting:.0f} {northing:.0f}",
        utm_epsg=epsg,
        geo_uri=f"geo:{lat:.6f},{lon:.6f}",
    )
