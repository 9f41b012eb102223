"""One way to get a Dask client: an existing scheduler if settings name one, else a LocalCluster.

Pipelines never create clusters themselves; the command line (or a job
runner) opens one here and everything computed inside the ``with`` block runs
on it. Worker processes get the same GDAL settings as this process, and
compile (or load from numba's cache) the scene-update kernel once at start
rather than inside the first task of every run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

from geo_monitor.errors import ConfigError
from geo_monitor.fold_kernel import warm_up
from geo_monitor.gdal_env import configure_gdal
from geo_monitor.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def dask_client(settings: Settings) -> Iterator[Client]:
    """A client on ``settings.dask_scheduler_address``, or on a LocalCluster of worker processes."""
    configure_gdal(GDAL_NUM_THREADS="1")  # a worker per core already: no nested GDAL threads
    if settings.dask_scheduler_address:
        try:
            client = Client(settings.dask_scheduler_address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {settings.dask_scheduler_address}: {exc}") from None
        cluster = None
    else:
        # Workers sample every thread's stack for the dashboard's profile every 10 ms by default;
        # with no dashboard that only costs CPU: 35-60 % more per scene-update task (docs/performance.md).
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(
                n_workers=settings.dask_workers,
                threads_per_worker=settings.dask_threads_per_worker,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
        client = Client(cluster)
    try:
        client.run(prepare_worker)
        log.info("dask client ready", extra={"scheduler": client.scheduler.address,
                                              "workers": len(client.scheduler_info()["workers"])})
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def prepare_worker() -> None:
    """Runs on every worker (and works in any process): GDAL settings, the compiled kernel ready."""
    configure_gdal(GDAL_NUM_THREADS="1")
    warm_up()
