"""GDAL settings for reading COGs, local or remote: the one place they are chosen.

:func:`configure_gdal` only fills in environment defaults, so a user's own
``GDAL_*`` variables always win. It is cheap and idempotent, so it can run in
every process that reads rasters, Dask workers included
(``client.run(configure_gdal)``; new workers inherit the environment of a
LocalCluster's parent).
"""

from __future__ import annotations

import os
from typing import Final

#: Defaults, and why each matters for Sentinel-2 COGs.
GDAL_DEFAULTS: Final[dict[str, str]] = {
    # Opening a COG over HTTP must not list its "directory" (one extra request, often a 403).
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # Neighbouring tiles of one window come in one range request instead of many.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # Parallel range requests share one HTTP/2 connection.
    "GDAL_HTTP_MULTIPLEX": "YES",
    # Headers and the first tiles are re-read for every band window otherwise.
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 1024 * 1024),
    # Transient 5xx/timeouts from object stores should not fail a whole job.
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    # A multi-tile window is decoded by several threads (GTiff driver, GDAL >= 3.6).
    "GDAL_NUM_THREADS": "ALL_CPUS",
}


def configure_gdal(**overrides: str) -> dict[str, str]:
    """Set GDAL options as environment defaults and return the values in force.

    ``overrides`` replace this module's defaults (e.g. ``GDAL_NUM_THREADS="1"``
    when many Dask threads already share the cores) but still never replace a
    variable the user has set. Returns the effective value of every option
    this function manages.
    """
    wanted = {**GDAL_DEFAULTS, **{k: str(v) for k, v in overrides.items()}}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in wanted}
