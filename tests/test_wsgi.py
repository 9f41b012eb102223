"""``web.wsgi`` under a real gunicorn with ``--preload``: the index loaded in the master, served by forked workers.

The master loads the alert index and closes the connections it used before
forking (a connection must never be shared by two processes). The workers
must then answer from the inherited index, open connections of their own,
and still see alerts written after the fork. Both back-ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from alert_samples import PIPELINE, make_alert
from api_support import free_port
from geo_monitor.store import AlertStore

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 60.0



def _matched(port: int, key: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/alerts?limit=10", headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=10) as response:  # a new connection each time
        return int(json.loads(response.read())["numberMatched"])


def test_preloaded_index_serves_from_forked_workers(store_url: str, tmp_path: Path) -> None:
    store = AlertStore.from_url(store_url, alert_index=False)
    store.migrate()
    store.upsert_alerts([make_alert(f"gm-{i:016x}", at=(-77.6 + i * 0.01, -0.93)) for i in range(3)], PIPELINE)
    key = store.create_api_key("wsgi-test", "partner")[1]
    port = free_port()
    env = {**os.environ, "GEO_MONITOR_DATABASE_URL": store_url, "GEO_MONITOR_DATA_DIR": str(tmp_path / "data"),
           "GEO_MONITOR_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--worker-class", "gthread", "--workers", "2",
         "--threads", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "web.wsgi:app"],
        cwd=REPO, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert server.poll() is None, f"gunicorn exited with {server.returncode}"
            try:
                first = _matched(port, key)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "gunicorn did not answer in time"
                time.sleep(0.3)
        answers = [first] + [_matched(port, key) for _ in range(19)]  # spread over both workers
        assert answers == [3] * 20

        store.upsert_alerts([make_alert("gm-00000000000000ff", at=(-77.0, -1.0))], PIPELINE)  # after the fork
        assert [_matched(port, key) for _ in range(20)] == [4] * 20
        assert server.poll() is None  # no worker died on a shared connection
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        store.dispose()
