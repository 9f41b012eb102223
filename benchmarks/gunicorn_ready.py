"""gunicorn settings for the load benchmark (``gunicorn -c benchmarks/gunicorn_ready.py``).

Each worker leaves a file named after its pid in ``GEO_MONITOR_BENCH_READY_DIR``
once it has loaded the app, and with it the alert index (``web.wsgi``), so
the benchmark can wait for every worker before its clients connect. Without
that wait, clients that connect while a worker is still loading land on the
workers that are ready, and keep-alive keeps them there (measured: 13 to 19
connections a worker when all were ready; nearly all on one when not).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

READY_DIR_ENV = "GEO_MONITOR_BENCH_READY_DIR"


def post_worker_init(worker: Any) -> None:
    """gunicorn calls this in each worker after the app is loaded, before it accepts a connection."""
    directory = os.environ.get(READY_DIR_ENV)
    if directory:
        (Path(directory) / str(worker.pid)).touch()
