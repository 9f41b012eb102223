"""Benchmark: throughput of the job queue itself (no-op jobs), on SQLite and PostgreSQL.

Submits N jobs, then W worker processes each loop claim -> heartbeat ->
complete until the queue is empty: every database round trip a real job
makes, with no work in between. Reports jobs per second over the run, and
checks that every job ran exactly once (successful, one attempt). A baseline
in the same run: the time for the same number of bare write transactions
(one row update each) on the same database, so the queue's cost reads as a
multiple of what any write costs there. Usage::

    .venv/bin/python benchmarks/job_queue.py [--jobs 1000] [--workers 2] [--url sqlite:///... | postgresql+psycopg://...]

Without --url it uses a fresh SQLite file in a temporary folder. A PostgreSQL
URL should name an empty database or schema (the tables are created there
and the jobs left behind).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from geo_monitor.store import AlertStore, JobPolicy, JobQueue  # noqa: E402
from geo_monitor.store.engine import writer  # noqa: E402

PARAMS = {"bbox": [-77.5, -1.0, -77.49, -0.99], "start": "2024-01-01", "end": "2024-06-30"}


def _work(url: str, name: str, start: Any, done: Any) -> None:
    queue = JobQueue.from_url(url, JobPolicy(lease_s=60))
    start.wait()
    ran = 0
    while (claim := queue.claim(name)) is not None:
        queue.heartbeat(claim.job.id, claim.token, 50, "working")
        queue.complete(claim.job.id, claim.token, {"noop": True})
        ran += 1
    done.put(ran)
    queue.engine.dispose()


def _bare_writes(store: AlertStore, n: int) -> float:
    """Seconds for ``n`` one-row write transactions (the floor any queue operation pays)."""
    engine = writer(store.engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        conn.execute(text("DELETE FROM bench_counter"))
        conn.execute(text("INSERT INTO bench_counter (id, n) VALUES (1, 0)"))
    started = time.perf_counter()
    for _ in range(n):
        with engine.begin() as conn:
            conn.execute(text("UPDATE bench_counter SET n = n + 1 WHERE id = 1"))
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_counter"))
    return seconds


def run(url: str, jobs: int, workers: int) -> dict[str, object]:
    store = AlertStore.from_url(url)
    store.migrate()
    queue = JobQueue.from_store(store)
    t0 = time.perf_counter()
    ids = [queue.submit("detect", PARAMS, "bench").id for _ in range(jobs)]
    submit_s = time.perf_counter() - t0
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_work, args=(url, f"bench-{i}", start, done)) for i in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(2)  # let every worker import and connect before the clock starts
    t1 = time.perf_counter()
    start.set()
    per_worker = [done.get(timeout=3600) for _ in procs]
    run_s = time.perf_counter() - t1
    for proc in procs:
        proc.join(timeout=60)
    finished = [queue.get(job_id) for job_id in ids]
    once = all(j is not None and j.state == "successful" and j.attempts == 1 for j in finished)
    # Three write transactions per job (claim, heartbeat, complete): compare like with like.
    floor_s = _bare_writes(store, 3 * jobs)
    store.dispose()
    return {
        "backend": store.engine.dialect.name,
        "jobs": jobs,
        "workers": workers,
        "submit_jobs_per_s": round(jobs / submit_s, 1),
        "run_jobs_per_s": round(jobs / run_s, 1),
        "run_seconds": round(run_s, 2),
        "jobs_per_worker": per_worker,
        "every_job_ran_once": once,
        "bare_write_tx_per_s": round(3 * jobs / floor_s, 1),
        # How many times longer the queue took than the same number of write transactions made one after another.
        "queue_vs_serial_bare_writes": round(run_s / floor_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--url", help="SQLAlchemy URL of the store (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        print(json.dumps(run(url, args.jobs, args.workers), indent=2))


if __name__ == "__main__":
    main()
