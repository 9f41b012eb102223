"""How many clear looks a site had between its start and its detection (evaluation helper).

A lag in days says little under Amazon cloud: a site that starts in the
rainy season may stay hidden for weeks. The fair measure is the number of
clear looks: scenes in which most of the site was usable by SCL (none of the
never-evidence classes). A detector that alerts on the first or second clear
look is as fast as the sky allows.
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from rasterio import features
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry.base import BaseGeometry

from geo_monitor.bands import SCL_BAND
from geo_monitor.change import evidence_mask
from geo_monitor.evaluation import EvaluationReport
from geo_monitor.loading import load_dn, utm_epsg_for
from geo_monitor.sources import open_source

#: A look is clear when at least this share of the site's pixels is usable evidence.
MIN_CLEAR_SHARE = 0.5


def clear_look_dates(source: Any, geometry: BaseGeometry, start: date, end: date) -> list[date]:
    """Dates (ascending) of the scenes between ``start`` and ``end`` that saw ``geometry`` (EPSG:4326) clearly."""
    bbox = geometry.bounds
    found = source.search(bbox, start, end)
    if not found.scenes:
        return []
    epsg = utm_epsg_for((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    with warnings.catch_warnings():
        # odc-stac hands GDAL in-memory arrays without a geotransform while resampling: harmless, noisy
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = load_dn(found.scenes, crs=f"EPSG:{epsg}", bbox=bbox, bands=[SCL_BAND]).compute()
    from pyproj import Transformer
    from shapely.ops import transform as shp_transform

    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform
    transform = ds.odc.geobox.affine
    inside = features.rasterize([shp_transform(to_utm, geometry)], out_shape=ds[SCL_BAND].shape[1:],
                                transform=transform, all_touched=False).astype(bool)
    if not inside.any():
        return []
    days = []
    for t in range(ds.sizes["time"]):
        usable = evidence_mask(ds[SCL_BAND].values[t])[inside]
        if usable.mean() >= MIN_CLEAR_SHARE:
            days.append(date.fromisoformat(str(ds.time.values[t])[:10]))
    return sorted(days)


def add_clear_look_lags(report: EvaluationReport, truth: Any, catalog: str, collection: str | None = None) -> None:
    """Fill ``lag_clear_looks`` of every detected site and the report's median, reading SCL from ``catalog``."""
    source = open_source(catalog, collection)
    by_name = {row["name"]: row.geometry for _, row in truth.to_crs("EPSG:4326").iterrows() if "name" in row}
    lags, sites = [], []
    for site in report.sites:
        if site.lag_days is not None and site.name in by_name:
            detected = site.start_date + timedelta(days=site.lag_days)
            looks = clear_look_dates(source, by_name[site.name], site.start_date, max(detected, site.start_date))
            site = replace(site, lag_clear_looks=sum(1 for d in looks if d <= detected))
            lags.append(site.lag_clear_looks)
        sites.append(site)
    report.sites = sites
    report.median_lag_clear_looks = float(statistics.median(lags)) if lags else None
