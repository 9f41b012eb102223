"""Persisted change state of one grid: versioned Zarr stores and an atomic pointer.

Layout under ``<data_dir>/state/<grid key>/``::

    CURRENT.json        which version is current, which scenes it has applied
    baseline.zarr/      the per-pixel baseline, written once (before version 1 becomes current)
    v000003.zarr/       change-state variables on the grid (y, x), chunk-aligned
    v000004.zarr/       being written by a run; becomes current only when complete

A run writes a complete new version and then replaces ``CURRENT.json``
(``os.replace`` is atomic on one filesystem), so a crash at any point leaves
the previous version current and consistent; the run can simply be repeated.
The grid key covers everything that makes two states incomparable (grid,
baseline window, monitoring start, method version).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from geo_monitor.errors import GeoMonitorError

POINTER = "CURRENT.json"


@dataclass(frozen=True)
class GridSpec:
    """One 10 m grid in one UTM zone: what the state arrays are aligned to."""

    epsg: int
    x0: float  # west edge, metres
    y0: float  # north edge, metres
    width: int
    height: int
    resolution: float = 10.0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.height * self.resolution, self.x0 + self.width * self.resolution, self.y0)


@dataclass
class StateInfo:
    """The pointer file's content."""

    version: int
    grid: dict[str, Any]
    baseline_start: str
    monitor_start: str
    method: str
    applied_scene_ids: list[str] = field(default_factory=list)
    last_applied_day: int = 0


def grid_key(grid: GridSpec, baseline_start: str, monitor_start: str, method: str) -> str:
    doc = json.dumps([asdict(grid), baseline_start, monitor_start, method], sort_keys=True)
    return f"epsg{grid.epsg}-" + hashlib.sha256(doc.encode()).hexdigest()[:16]


class StateStore:
    """Versioned state of one grid key under ``root``."""

    def __init__(self, root: Path, key: str) -> None:
        self.dir = Path(root) / key

    def current(self) -> StateInfo | None:
        pointer = self.dir / POINTER
        if not pointer.is_file():
            return None
        try:
            info = StateInfo(**json.loads(pointer.read_text()))
        except (ValueError, TypeError) as exc:
            raise GeoMonitorError(f"{pointer} is not a valid state pointer ({exc}); remove {self.dir} to start over")
        if not self.version_path(info.version).exists():
            raise GeoMonitorError(f"{pointer} names version {info.version}, which is missing; remove {self.dir}")
        return info

    @property
    def baseline_path(self) -> Path:
        """The baseline, written once per grid key (before the first version is committed)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / "baseline.zarr"

    def state_group(self, info: StateInfo) -> zarr.Group:
        return zarr.open_group(str(self.version_path(info.version)), mode="r")

    def baseline_group(self) -> zarr.Group:
        return zarr.open_group(str(self.baseline_path), mode="r")

    def read_all(self, info: StateInfo) -> dict[str, np.ndarray]:
        """Every state and baseline variable of ``info``'s version, in memory (small grids, tests)."""
        return {name: array[:] for group in (self.state_group(info), self.baseline_group())
                for name, array in group.arrays()}

    def new_version_path(self, info: StateInfo | None) -> tuple[int, Path]:
        version = (info.version + 1) if info else 1
        path = self.version_path(version)
        if path.exists():  # left by a crashed run: never current, safe to discard
            shutil.rmtree(path)
        self.dir.mkdir(parents=True, exist_ok=True)
        return version, path

    def commit(self, info: StateInfo) -> None:
        """Make ``info.version`` current, then drop versions older than the previous one."""
        tmp = self.dir / (POINTER + ".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=1))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / POINTER)
        for old in self.dir.glob("v*.zarr"):
            if int(old.stem[1:]) < info.version - 1:
                shutil.rmtree(old, ignore_errors=True)

    def version_path(self, version: int) -> Path:
        return self.dir / f"v{version:06d}.zarr"
