"""Every job kind's runner, sharing one Dask client: what a worker (command or embedded) is given."""

from __future__ import annotations

from typing import Any

from geo_monitor.jobs.detect import DetectJobRunner
from geo_monitor.jobs.retrain import RetrainJobRunner
from geo_monitor.settings import Settings
from geo_monitor.store import AlertStore


class JobRunners:
    """The runners of ``detect``, ``replay`` (the detect runner, replaying) and ``retrain``."""

    def __init__(self, settings: Settings, store: AlertStore) -> None:
        self.detect = DetectJobRunner(settings, store)
        self.retrain = RetrainJobRunner(settings, self.detect.client)

    def by_kind(self) -> dict[str, Any]:
        return {"detect": self.detect, "replay": self.detect, "retrain": self.retrain}

    def close(self) -> None:
        """Close the Dask client (and the LocalCluster it started, if any)."""
        self.detect.close()
