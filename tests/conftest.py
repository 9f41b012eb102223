"""Shared fixtures: the small SYNTHETIC sample area, built once per test session with the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # helper modules beside the tests

# The alert store's two back-ends (sqlite, postgis) as fixtures for every test module.
from store_backends import alert_store, store_backend, store_url  # noqa: E402,F401


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``geo-monitor`` as a user would: a separate process, text output captured."""
    full_env = {**os.environ, "GEO_MONITOR_LOG_FORMAT": "text", **(env or {})}
    return subprocess.run([sys.executable, "-m", "geo_monitor.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO_ROOT, timeout=timeout)


@pytest.fixture(scope="session")
def sample_area(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The small preset of the sample area (same generator as the demo's), built by `geo-monitor sample-data`."""
    out = tmp_path_factory.mktemp("sample") / "small"
    result = cli("sample-data", "--preset", "small", "--out", str(out), "--workers", "2")
    assert result.returncode == 0, result.stderr
    yield out
