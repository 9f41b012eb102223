"""docs/partners.md runs: every ```sh and ```python block, in order, against a real server on loopback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alert_samples import make_alert
from api_support import make_api, serving, test_settings

from geo_monitor.store import AlertStore

DOC = Path(__file__).resolve().parents[1] / "docs" / "partners.md"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.M | re.S)
PIPELINE = "pipeline:mining-change@1"


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def test_the_guide_has_runnable_examples() -> None:
    kinds = [kind for kind, _ in blocks()]
    assert kinds.count("sh") >= 4 and kinds.count("python") >= 3
    text = DOC.read_text(encoding="utf-8")
    for topic in ("apikeys create", "updated_since", "cursor", "webhook-signature", "OAPIF:", "QGIS"):
        assert topic in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide's shell examples use curl")
def test_every_example_runs_against_a_live_server(tmp_path: Path) -> None:
    store = AlertStore.from_url(f"sqlite:///{tmp_path / 'store.sqlite'}")
    store.migrate()
    try:
        api = make_api(store, test_settings(tmp_path))
        store.upsert_alerts([make_alert(f"gm-{i:016x}", at=(-77.9 + i * 0.01, -1.0)) for i in range(12)], PIPELINE)
        work = tmp_path / "partner"
        work.mkdir()
        with serving(api.app) as url:
            env = {**os.environ, "GEO_MONITOR_URL": url, "GEO_MONITOR_KEY": api.keys["partner"]}
            outputs = []
            for kind, code in blocks():
                command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
                result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)
                assert result.returncode == 0, f"{kind} block failed:\n{code}\n--- stderr:\n{result.stderr}"
                outputs.append(result.stdout)
            assert any("12 new or changed alerts" in out for out in outputs)
            assert any("12 alerts;" in out for out in outputs)
            # the poller again: its saved cursor means nothing new
            poller = next(code for kind, code in blocks() if kind == "python" and "poll-state" in code)
            again = subprocess.run([sys.executable, "-c", poller], cwd=work, env=env, capture_output=True,
                                   text=True, timeout=120)
            assert again.stdout.strip() == "0 new or changed alerts", again.stderr
        assert (work / "critical.gpkg").stat().st_size > 0 and (work / "alerts-shp.zip").stat().st_size > 0
    finally:
        store.dispose()


def test_the_guides_webhook_check_accepts_what_the_server_signs() -> None:
    """The verifier partners copy from the guide agrees with the server's own signing."""
    import time

    from geo_monitor.store.outbox import new_secret
    from geo_monitor.webhooks import sign

    code = next(code for kind, code in blocks() if kind == "python" and "def verify_webhook" in code)
    namespace: dict = {}
    exec(compile(code, "partners.md", "exec"), namespace)  # also runs the guide's own self-check
    verify = namespace["verify_webhook"]
    secret, body, stamp = new_secret(), b'{"type":"alert.created"}', int(time.time())
    headers = {"webhook-id": "msg_42", "webhook-timestamp": str(stamp),
               "webhook-signature": sign(secret, "msg_42", stamp, body)}
    assert verify(secret, headers, body)
    assert not verify(new_secret(), headers, body)
