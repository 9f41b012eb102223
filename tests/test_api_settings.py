"""Web settings: the secret key is never a default, rate-limit settings are checked at start-up."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from geo_monitor.errors import ConfigError
from geo_monitor.secret_key import SECRET_KEY_FILE, resolve_secret_key
from geo_monitor.settings import load_settings


def test_generated_secret_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "var")
    key = resolve_secret_key(settings)
    assert len(key) >= 32
    path = tmp_path / "var" / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_secret_key(settings) == key  # every worker and restart shares it
    assert resolve_secret_key(load_settings(data_dir=tmp_path / "other")) != key
    assert not list((tmp_path / "var").glob(".secret_key.*"))  # no drafts left behind


def test_secret_key_from_settings(tmp_path: Path) -> None:
    assert resolve_secret_key(load_settings(data_dir=tmp_path, secret_key="s" * 40)) == b"s" * 40
    with pytest.raises(ConfigError, match="at least 16"):
        resolve_secret_key(load_settings(data_dir=tmp_path, secret_key="short"))
    assert load_settings(secret_key="s" * 40).public_view()["secret_key"] == "***"


@pytest.mark.parametrize("value", ["600/minute", "10 per second; 1000/hour", "5/2 minutes"])
def test_rate_limits_accepted(value: str) -> None:
    assert load_settings(rate_limit=value).rate_limit == value


@pytest.mark.parametrize("field, value", [("rate_limit", "lots"), ("rate_limit", "10/fortnight"),
                                          ("rate_limit_storage_uri", "mysql://x"), ("max_request_bytes", 10)])
def test_bad_web_settings_fail_at_start(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        load_settings(**{field: value})
