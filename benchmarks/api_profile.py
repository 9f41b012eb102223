"""Benchmark: CPU per page of the partner API in one process (Flask test client), with a profile.

The load benchmark (``api_load.py``) measures latency under 50 clients, which
on a shared 2-core machine mostly measures the other tenants. This one runs
the same request, ``GET /api/v1/alerts?bbox=W,S,E,N&limit=100`` with a
partner key, sequentially through the Flask test client against the same
filled store (SYNTHETIC alerts, ``synthetic_alerts.py``), and reports the
CPU time of this process per page (``time.process_time``: the steadier
number on a busy machine), the wall time, and where the CPU goes:

- the SQL part alone (``AlertStore.feature_page``, the same queries), and
- optionally a cProfile of the whole request (``--profile``), top functions
  by cumulative time.

Usage::

    .venv/bin/python benchmarks/api_profile.py [--backend sqlite|postgis] [--requests 300]
        [--work var/bench-api] [--postgres-url ...] [--profile]

The store is the one ``api_load.py --fill-only`` fills (and is filled here
when missing). For SQLite the test client and the database share this
process, so the CPU per page includes SQLite's own work; for PostGIS the
server process's CPU is not included (the ``postgres`` line reports it
separately, from every PostgreSQL process on the machine).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_load import DEFAULT_PG_URL, PAGE, PG_URL_ENV, _postgres_cpu, filled_store, query_boxes, sqlite_url  # noqa: E402

from geo_monitor.settings import load_settings  # noqa: E402
from geo_monitor.store import AlertQuery, AlertStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgis"], default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get(PG_URL_ENV, DEFAULT_PG_URL))
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-api")
    parser.add_argument("--profile", action="store_true", help="print a cProfile (CPU time) of the requests")
    parser.add_argument("--profile-sort", default="cumulative", help="pstats sort key (cumulative, tottime)")
    parser.add_argument("--profile-lines", type=int, default=40, help="functions listed")
    args = parser.parse_args()
    work = args.work.resolve()
    url = sqlite_url(work) if args.backend == "sqlite" else args.postgres_url

    store = filled_store(args.backend, url, work, args.alerts, args.seed)
    key = store.create_api_key("bench-profile", "partner")[1]
    boxes = query_boxes(store, args.requests, args.seed)
    os.environ.update({"GEO_MONITOR_DATABASE_URL": url, "GEO_MONITOR_DATA_DIR": str(work / f"data-{args.backend}"),
                       "GEO_MONITOR_RATE_LIMIT": "1000000/minute", "GEO_MONITOR_LOG_LEVEL": "WARNING"})
    from web import create_app

    app = create_app(load_settings(), store=store)
    client = app.test_client()
    paths = [f"/api/v1/alerts?bbox={quote(b, safe=',')}&limit={PAGE}" for b in boxes]
    for path in paths[:20]:  # warm: compiled statements, caches, connections
        assert client.get(path, headers={"X-API-Key": key}).status_code == 200

    matched, returned, cpu_ms, wall_ms = [], [], [], []
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall: the machine is shared
    pg_before = _postgres_cpu()
    for path in paths:
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        response = client.get(path, headers={"X-API-Key": key})
        if profiler:
            profiler.disable()
        cpu_ms.append(1000 * (time.process_time() - cpu))
        wall_ms.append(1000 * (time.perf_counter() - wall))
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        body = json.loads(response.get_data())
        matched.append(body["numberMatched"])
        returned.append(body["numberReturned"])
    pg_ms = 1000 * (_postgres_cpu() - pg_before) / len(paths)

    # The code before pre-rendered features had only query_alerts: measuring "before" runs this script on it.
    page_of = getattr(store, "feature_page", None) or store.query_alerts
    sql_cpu = []
    for box in boxes:
        query = AlertQuery(bbox=tuple(float(v) for v in box.split(",")), limit=PAGE)  # type: ignore[arg-type]
        cpu = time.process_time()
        page_of(query)
        sql_cpu.append(1000 * (time.process_time() - cpu))

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        return (f"mean {statistics.fmean(values):.2f}  median {statistics.median(values):.2f}  "
                f"p95 {ordered[int(0.95 * (len(ordered) - 1))]:.2f}")

    print(f"backend {args.backend}, {store.count():,} alerts, {len(paths)} requests, load avg {os.getloadavg()}")
    print(f"numberMatched: median {statistics.median(matched):.0f}, mean {statistics.fmean(matched):.0f}, "
          f"max {max(matched)}; full pages {sum(r == PAGE for r in returned) / len(returned):.0%}")
    print(f"CPU ms per page (this process):   {summary(cpu_ms)}")
    print(f"wall ms per page:                 {summary(wall_ms)}")
    print(f"  of which store.feature_page CPU: {summary(sql_cpu)}")
    if args.backend == "postgis":
        print(f"PostgreSQL CPU ms per page (all postgres processes on the machine): {pg_ms:.2f}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.profile_sort).print_stats(args.profile_lines)
        print(out.getvalue())
    store.dispose()


if __name__ == "__main__":
    main()
