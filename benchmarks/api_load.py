"""Benchmark: the partner API under load, bbox pages of 100 at 50 concurrent clients, SQLite and PostGIS.

For each back-end it

1. fills a store with SYNTHETIC alerts (``benchmarks/synthetic_alerts.py``:
   100,000 by default, clustered in Ecuador's mining districts, with a mix of
   statuses) through ``AlertStore.upsert_alerts``, once: a filled store is
   kept in ``--work`` (SQLite) or in the ``--postgres-url`` database and
   reused while the alert count and seed match;
2. serves ``web.wsgi:app`` under gunicorn (``gthread`` workers, or ``sync``
   with ``--worker-class sync``) on loopback, and waits until every worker
   has loaded its alert index (``gunicorn_ready.py``);
3. drives ``--clients`` concurrent clients from THIS process (the server
   runs in gunicorn's own processes): each holds a keep-alive connection and
   its own partner API key, and loops without pause over
   ``GET /api/v1/alerts?bbox=W,S,E,N&limit=100`` with random boxes
   0.1-0.5 degrees wide (11-55 km) around random alerts, for ``--duration``
   seconds after a ``--warmup``;
4. reports throughput, p50/p95/p99/max latency (client side, request sent to
   last body byte), errors (non-200 answers, broken connections, malformed
   pages in the 1-in-10 responses it parses), the share of full pages, and
   the CPU the server, PostgreSQL, the load generator and the whole machine
   used during the measured window (not the warm-up, when workers load their
   alert index).

The load generator is a small asyncio HTTP/1.1 client (standard library,
and orjson, which the project already needs, for the pages it checks), so
nothing else needs installing; it shares the 2 cores with the server, which
the CPU columns make visible, so it is kept lean. Usage::

    .venv/bin/python benchmarks/api_load.py [--backend sqlite postgis] [--alerts 100000]
        [--clients 50] [--duration 60] [--workers 3] [--threads 2] [--worker-class gthread|sync]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/geo_monitor_bench]

The PostGIS database (``GEO_MONITOR_BENCH_POSTGRES_URL`` or ``--postgres-url``)
is created with the postgis extension when missing, as ``.ci/run`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psutil
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from geo_monitor.alerts import Status  # noqa: E402
from geo_monitor.store import AlertStore  # noqa: E402
from gunicorn_ready import READY_DIR_ENV  # noqa: E402
from process_tree import cpu_seconds, tree_cpu_seconds  # noqa: E402
from synthetic_alerts import synthetic_alerts  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/geo_monitor_bench"
PG_URL_ENV = "GEO_MONITOR_BENCH_POSTGRES_URL"
#: Alerts per upsert transaction while filling.
FILL_BATCH = 2000
#: Share of alerts moved off ``new`` after filling (status -> share), as a review team would have.
STATUS_MIX = {Status.UNDER_REVIEW: 0.15, Status.CONFIRMED: 0.10, Status.DISMISSED: 0.08, Status.ACTIONED: 0.05}
#: Query boxes: side in degrees, uniform in this range.
BOX_SIDE_DEG = (0.1, 0.5)
PAGE = 100
#: Every n-th response is parsed and checked (parsing all would cost the server's cores).
CHECK_EVERY = 10
REQUEST_TIMEOUT_S = 30.0


# --- the store -----------------------------------------------------------------------------


def sqlite_url(work: Path) -> str:
    return f"sqlite:///{work / 'sqlite' / 'geo-monitor.sqlite'}"


def ensure_postgis_database(url: str, fresh: bool) -> None:
    """Create the benchmark database with PostGIS when missing (``fresh``: drop it first)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first()
            if exists and fresh:
                conn.execute(text(f'DROP DATABASE "{target.database}" WITH (FORCE)'))
                exists = None
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
    engine = create_engine(target, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    finally:
        engine.dispose()


def filled_store(backend: str, url: str, work: Path, count: int, seed: int) -> AlertStore:
    """A migrated store holding exactly the ``count`` synthetic alerts of ``seed`` (filled when it does not)."""
    marker = work / f"filled-{backend}.json"
    wanted = {"alerts": count, "seed": seed, "url": url}
    if backend == "postgis":
        ensure_postgis_database(url, fresh=False)
    store = AlertStore.from_url(url)
    store.migrate()
    if marker.exists() and json.loads(marker.read_text()) == wanted and store.count() >= count:
        print(f"[{backend}] reusing the filled store ({store.count()} alerts)", flush=True)
        return store
    store.dispose()
    if backend == "postgis":
        ensure_postgis_database(url, fresh=True)
    else:
        path = Path(make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = AlertStore.from_url(url)
    store.migrate()
    started = time.perf_counter()
    alerts = synthetic_alerts(count, seed)
    done = 0
    while batch := list(islice(alerts, FILL_BATCH)):
        store.upsert_alerts(batch, actor="benchmark:api_load")
        done += len(batch)
        print(f"[{backend}] filled {done}/{count} ({time.perf_counter() - started:.0f} s)", end="\r", flush=True)
    _mix_statuses(store, seed)
    if backend == "postgis":
        # What autovacuum would do after a bulk load: the store reads the table size from the
        # statistics (reltuples) to choose a bbox plan, and -1 (never analysed) reads as empty.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE alerts"))
    print(f"\n[{backend}] filled {count} alerts in {time.perf_counter() - started:.0f} s", flush=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted))
    return store


def _mix_statuses(store: AlertStore, seed: int) -> None:
    """Move a share of the alerts to other statuses directly in SQL (seed data: no history rows).

    Writing around the store leaves the stored feature texts behind, so they
    are rendered again afterwards (``refresh_features``), as any bulk SQL
    import must do.
    """
    rng = random.Random(seed + 1)
    update = text("UPDATE alerts SET status = :s WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
    with store.engine.begin() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM alerts ORDER BY id"))]
        rng.shuffle(ids)
        start = 0
        for status, share in STATUS_MIX.items():
            chosen = ids[start : start + int(share * len(ids))]
            start += len(chosen)
            for chunk in _chunks(chosen, 900):
                conn.execute(update, {"s": status.value, "ids": chunk})
    store.refresh_features()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def query_boxes(store: AlertStore, count: int, seed: int) -> list[str]:
    """``count`` bbox parameters around randomly chosen alerts (so most pages are full)."""
    rng = random.Random(seed + 2)
    with store.engine.connect() as conn:
        centres = conn.execute(text("SELECT (minx + maxx) / 2, (miny + maxy) / 2 FROM alerts")).all()
    boxes = []
    for _ in range(count):
        lon, lat = rng.choice(centres)
        side = rng.uniform(*BOX_SIDE_DEG)
        west = lon - rng.uniform(0, side)
        south = lat - rng.uniform(0, side)
        boxes.append(f"{west:.5f},{south:.5f},{west + side:.5f},{south + side:.5f}")
    return boxes


# --- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(url: str, data_dir: Path, port: int, workers: int, threads: int,
                   worker_class: str = "gthread", preload: bool = False) -> subprocess.Popen[bytes]:
    """gunicorn serving ``web.wsgi:app``; each worker marks itself ready in :func:`ready_dir` (``gunicorn_ready.py``)."""
    ready = ready_dir(data_dir)
    shutil.rmtree(ready, ignore_errors=True)
    ready.mkdir(parents=True)
    env = {
        **os.environ,
        READY_DIR_ENV: str(ready),
        "GEO_MONITOR_DATABASE_URL": url,
        "GEO_MONITOR_DATA_DIR": str(data_dir),
        # One key per client, far below this: the limiter still runs on every request.
        "GEO_MONITOR_RATE_LIMIT": "1000000/minute",
        "GEO_MONITOR_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", worker_class, "--workers", str(workers), "--threads", str(threads),
        "--bind", f"127.0.0.1:{port}", "--backlog", "2048", "--keep-alive", "30",
        "--log-level", "warning", "--timeout", "60", "--config", str(Path(__file__).with_name("gunicorn_ready.py")),
        *(["--preload"] if preload else []),
        "web.wsgi:app",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)


def ready_dir(data_dir: Path) -> Path:
    return data_dir / "workers-ready"


def wait_ready(port: int, key: str, process: subprocess.Popen[bytes], ready: Path, workers: int,
               timeout_s: float = 180.0) -> None:
    """Until every worker has loaded the app (and its index) and the server answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        if len(list(ready.iterdir())) < workers:
            time.sleep(0.5)
            continue
        try:
            status = asyncio.run(_probe(port, key))
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not answer in time")


async def _probe(port: int, key: str) -> int:
    conn = await Connection.open("127.0.0.1", port)
    try:
        status, _ = await conn.get("/ogc/conformance", key)
        return status
    finally:
        conn.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- the load generator --------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection (enough HTTP for this server: Content-Length or chunked bodies)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, f"{host}:{port}")

    async def get(self, path: str, key: str) -> tuple[int, bytes]:
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {key}\r\nAccept: */*\r\n\r\n"
        self.writer.write(request.encode("ascii"))
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()
            self.closed = True
        if headers.get("connection", "").lower() == "close":
            self.close()  # at once, as HTTP clients do: a sync worker waits for our FIN before its next request
        return status, body

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()
        self.closed = True


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    full_pages: int = 0
    returned: list[int] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def drive(port: int, keys: list[str], boxes: list[str], warmup_s: float, duration_s: float,
                on_window: Callable[[], None] = lambda: None, ramp_s: float = 0.0) -> LoadResult:
    """Run one client per key until warmup + duration; record what starts after the warmup and ends in time.

    Clients start one after another over the first ``ramp_s`` seconds (within the warm-up).
    ``on_window`` is called when the measured window opens and when it closes (CPU readings).
    """
    result = LoadResult()
    loop = asyncio.get_running_loop()
    begin = loop.time()
    measure_from, measure_to = begin + warmup_s, begin + warmup_s + duration_s
    loop.call_at(measure_from, on_window)
    loop.call_at(measure_to, on_window)
    counter = iter(range(1 << 62))

    async def client(index: int, key: str) -> None:
        rng = random.Random(index)
        conn: Connection | None = None
        await asyncio.sleep(ramp_s * index / len(keys))
        while loop.time() < measure_to:
            bbox = rng.choice(boxes)
            path = f"/api/v1/alerts?bbox={quote(bbox, safe=',')}&limit={PAGE}"
            started = loop.time()
            try:
                if conn is None or conn.closed:
                    conn = await Connection.open("127.0.0.1", port)
                async with asyncio.timeout(REQUEST_TIMEOUT_S):  # no task per request, as wait_for makes
                    status, body = await conn.get(path, key)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                    ValueError) as exc:
                if started >= measure_from:
                    result.error(type(exc).__name__)
                if conn is not None:
                    conn.close()
                conn = None
                continue
            ended = loop.time()
            if not (measure_from <= started and ended <= measure_to):
                continue
            result.latencies_s.append(ended - started)
            if status != 200:
                result.error(f"HTTP {status}")
            elif next(counter) % CHECK_EVERY == 0:
                _check_page(body, result)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(client(i, key) for i, key in enumerate(keys)))
    return result


def freeze_heap() -> None:
    """Move everything this process holds so far out of the garbage collector's sight (``gc.freeze``).

    The generator holds ~100,000 objects from setting up (the store's
    modules, the boxes); with them in view, a full collection took 40-90 ms
    and came about twice a second under load, stalling every client's
    request in flight: measured as server latency that was not (same server
    code, one run each: p95 158 -> 115 ms). Frozen, a collection only walks
    the objects made since.
    """
    gc.collect()
    gc.freeze()


def _check_page(body: bytes, result: LoadResult) -> None:
    try:
        page = orjson.loads(body)  # the generator shares the cores: json.loads of a page costs ~4 ms, orjson ~1
        returned = page["numberReturned"]
        ok = page["type"] == "FeatureCollection" and returned == len(page["features"]) <= PAGE
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        result.error("malformed page")
        return
    result.checked += 1
    result.returned.append(returned)
    result.full_pages += returned == PAGE


# --- measuring -----------------------------------------------------------------------------


def _postgres_cpu() -> float:
    """CPU seconds of the machine's PostgreSQL processes (0 when they cannot be read)."""
    return cpu_seconds(proc for proc in psutil.process_iter(["name"])
                       if (proc.info.get("name") or "").startswith("postgres"))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[index]


def run_backend(backend: str, url: str, args: argparse.Namespace) -> dict[str, object]:
    store = filled_store(backend, url, args.work, args.alerts, args.seed)
    try:
        keys = [store.create_api_key(f"bench-client-{i}", "partner")[1] for i in range(args.clients)]
        boxes = query_boxes(store, 20_000, args.seed)
        total = store.count()
    finally:
        store.dispose()
    port = free_port()
    data_dir = args.work / f"data-{backend}"
    server = start_gunicorn(url, data_dir, port, args.workers, args.threads, args.worker_class, args.preload)
    try:
        wait_ready(port, keys[0], server, ready_dir(data_dir), args.workers)
        load_before = os.getloadavg()
        me = psutil.Process()
        readings: list[tuple[float, tuple[Any, ...]]] = []  # (time, CPU) as the measured window opens and closes

        def read_cpu() -> None:
            cpu = (tree_cpu_seconds(server.pid), sum(me.cpu_times()[:2]), _postgres_cpu(), psutil.cpu_times())
            readings.append((time.perf_counter(), cpu))

        freeze_heap()
        result = asyncio.run(drive(port, keys, boxes, args.warmup, args.duration, read_cpu,
                                   min(args.ramp, args.warmup)))
        (opened, cpu_before), (closed, cpu_after) = readings[0], readings[-1]
        wall = closed - opened
        load_after = os.getloadavg()
    finally:
        stop(server)
    busy = lambda t: t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)  # noqa: E731
    cores = psutil.cpu_count() or 1
    latencies = sorted(result.latencies_s)
    return {
        "date": date.today().isoformat(),
        "backend": backend,
        "alerts": total,
        "clients": args.clients,
        "workers": args.workers,
        "threads": args.threads,
        "duration_s": args.duration,
        "requests": len(latencies),
        "throughput_rps": len(latencies) / args.duration,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * (latencies[-1] if latencies else float("nan")),
        "mean_ms": 1000 * (statistics.fmean(latencies) if latencies else float("nan")),
        "errors": sum(result.errors.values()),
        "error_kinds": result.errors,
        "checked_pages": result.checked,
        "full_page_share": result.full_pages / result.checked if result.checked else float("nan"),
        "mean_returned": statistics.fmean(result.returned) if result.returned else float("nan"),
        # CPU over the measured window (not the warm-up, when workers load their index), in cores.
        "server_cores": (cpu_after[0] - cpu_before[0]) / wall,
        "generator_cores": (cpu_after[1] - cpu_before[1]) / wall,
        "postgres_cores": (cpu_after[2] - cpu_before[2]) / wall,
        "machine_cores": (busy(cpu_after[3]) - busy(cpu_before[3])) / wall,
        "cores": cores,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def markdown_row(r: dict[str, object]) -> str:
    return (
        f"| {r['date']} | {r['backend']} | {r['alerts']:,} | {r['clients']} | {r['workers']}×{r['threads']} "
        f"| {r['throughput_rps']:.0f}/s | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} "
        f"| {r['errors']} | {100 * r['full_page_share']:.0f}% "  # type: ignore[operator]
        f"| {r['server_cores']:.2f} / {r['postgres_cores']:.2f} / {r['generator_cores']:.2f} / {r['machine_cores']:.2f} "
        f"| {r['loadavg_before'][0]:.2f} |"  # type: ignore[index]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", nargs="+", choices=["sqlite", "postgis"], default=["sqlite", "postgis"])
    parser.add_argument("--postgres-url", default=os.environ.get(PG_URL_ENV, DEFAULT_PG_URL))
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=25.0,
                        help="seconds of load before measuring (every worker loads its index first)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"],
                        help="gunicorn worker class (sync: one request at a time per process, no keep-alive)")
    parser.add_argument("--ramp", type=float, default=5.0,
                        help="seconds over which the clients connect, one after another (within the warm-up)")
    parser.add_argument("--preload", action="store_true",
                        help="gunicorn --preload: the app and its alert index loaded once, in the master")
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-api", help="where filled stores are kept")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--fill-only", action="store_true", help="fill (or check) the stores, measure nothing")
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)

    results = []
    for backend in args.backend:
        url = sqlite_url(args.work) if backend == "sqlite" else args.postgres_url
        if args.fill_only:
            filled_store(backend, url, args.work, args.alerts, args.seed).dispose()
            continue
        result = run_backend(backend, url, args)
        results.append(result)
        print(json.dumps(result, indent=1), flush=True)
    print("\n| date | back-end | alerts | clients | workers×threads | throughput | p50 ms | p95 ms | p99 ms "
          "| errors | full pages | CPU cores: server / postgres / generator / machine | load avg before |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(markdown_row(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
