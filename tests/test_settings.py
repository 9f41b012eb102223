"""Settings: defaults, GEO_MONITOR_* variables and their conventional aliases, the TOML file, and
one-line ConfigErrors for every bad value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geo_monitor.errors import ConfigError
from geo_monitor.settings import CONFIG_ENV, CONTEXT_LAYERS, ENV_PREFIX, Settings, load_settings

#: Variables outside the GEO_MONITOR_ prefix that settings read too.
ALIASES = ("DATABASE_URL", "DASK_SCHEDULER_ADDRESS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings from the machine: no variables, and a working directory without geo-monitor.toml."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name in ALIASES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line_config_error(**env: str) -> str:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.resolved_data_dir == tmp_path / "var"
    assert s.resolved_sample_dir == tmp_path / "var" / "sample"
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'var' / 'geo-monitor.sqlite'}"
    assert s.dask_scheduler_address is None
    assert s.resolved_stac_url == str(tmp_path / "var" / "sample" / "catalog" / "catalog.json")
    assert s.stac_collection == "sentinel-2-l2a"
    assert s.resolved_context_dir == tmp_path / "var" / "sample" / "context"
    assert (s.log_level, s.log_format) == ("INFO", "json")
    assert s.public_view()["dask_scheduler_address"] == "(LocalCluster)"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEO_MONITOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GEO_MONITOR_DASK_WORKERS", "4")
    monkeypatch.setenv("GEO_MONITOR_STAC_URL", "https://example.test/stac/v1")
    monkeypatch.setenv("GEO_MONITOR_MAX_CLOUD_COVER", "60")
    monkeypatch.setenv("GEO_MONITOR_LOG_FORMAT", "text")
    s = load_settings()
    assert s.resolved_data_dir == tmp_path / "data"
    assert s.resolved_sample_dir == tmp_path / "data" / "sample"
    assert s.dask_workers == 4
    assert s.resolved_stac_url == "https://example.test/stac/v1"
    assert s.max_cloud_cover == 60.0
    assert s.log_format == "text"


@pytest.mark.parametrize("name", ["DATABASE_URL", "GEO_MONITOR_DATABASE_URL"])
def test_database_url_and_its_alias(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "postgresql://geo:secret@db.internal:5432/geo")
    s = load_settings()
    assert s.resolved_database_url == "postgresql://geo:secret@db.internal:5432/geo"
    assert s.public_view()["database_url"] == "postgresql://geo:***@db.internal:5432/geo"


def test_prefixed_variable_wins_over_conventional_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/one")
    monkeypatch.setenv("GEO_MONITOR_DATABASE_URL", "postgresql://a@h/two")
    assert load_settings().resolved_database_url == "postgresql://a@h/two"


def test_dask_scheduler_address_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://scheduler:8786")
    assert load_settings().dask_scheduler_address == "tcp://scheduler:8786"


def test_toml_file_named_by_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere" / "site.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "/srv/geo"\ndask_workers = 3\nrivers_path = "/srv/context/rivers.gpkg"\n')
    monkeypatch.setenv(CONFIG_ENV, str(config))
    s = load_settings()
    assert s.resolved_data_dir == Path("/srv/geo")
    assert s.dask_workers == 3
    assert s.context_layer_path("rivers") == Path("/srv/context/rivers.gpkg")


def test_toml_in_working_directory_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "geo-monitor.toml").write_text('stac_collection = "from-file"\ndask_workers = 3\n')
    monkeypatch.setenv("GEO_MONITOR_DASK_WORKERS", "5")
    s = load_settings()
    assert s.stac_collection == "from-file"
    assert s.dask_workers == 5


def test_context_layers_found_in_context_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "concessions.gpkg").write_bytes(b"")
    (context / "rivers.geojson").write_text("{}")
    monkeypatch.setenv("GEO_MONITOR_CONTEXT_DIR", str(context))
    s = load_settings()
    found = {layer: s.context_layer_path(layer) for layer in CONTEXT_LAYERS}
    assert found["concessions"] == context / "concessions.gpkg"
    assert found["rivers"] == context / "rivers.geojson"
    assert found["provinces"] is None
    with pytest.raises(ConfigError, match="unknown context layer"):
        s.context_layer_path("roads")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GEO_MONITOR_DASK_WORKERS": "0"}, "dask_workers"),
        ({"GEO_MONITOR_DASK_WORKERS": "many"}, "dask_workers"),
        ({"GEO_MONITOR_MAX_CLOUD_COVER": "101"}, "max_cloud_cover"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "sqlite:/// or postgresql://"),
        ({"DASK_SCHEDULER_ADDRESS": "scheduler:8786"}, "tcp://host:8786"),
        ({"GEO_MONITOR_STAC_URL": "ftp://example.test/catalog.json"}, "http(s) URL or a local path"),
        ({"GEO_MONITOR_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"GEO_MONITOR_LOG_FORMAT": "xml"}, "log_format"),
        ({"GEO_MONITOR_STAC_COLLECTION": ""}, "stac_collection"),
    ],
)
def test_invalid_values_give_one_line_config_error(env: dict[str, str], expected: str) -> None:
    message = _one_line_config_error(**env)
    assert message.startswith("invalid settings: ")
    assert expected in message


def test_missing_config_file_named(tmp_path: Path) -> None:
    message = _one_line_config_error(**{CONFIG_ENV: str(tmp_path / "nope.toml")})
    assert "nope.toml" in message and "not a file" in message


def test_unknown_key_in_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "geo-monitor.toml").write_text('dask_wrokers = 3\n')
    message = _one_line_config_error()
    assert "dask_wrokers" in message


def test_malformed_toml_file(tmp_path: Path) -> None:
    (tmp_path / "geo-monitor.toml").write_text("data_dir = [unclosed\n")
    assert _one_line_config_error().startswith("invalid settings: ")


def test_job_settings_default_to_the_sample_and_data_dirs_and_read_json_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = load_settings(data_dir=tmp_path / "data")
    assert s.resolved_job_roots == [(tmp_path / "data" / "sample").resolve(), (tmp_path / "data").resolve()]
    assert s.job_allowed_url_prefixes == [] and (s.job_lease_s, s.job_max_attempts) == (60.0, 3)
    monkeypatch.setenv("GEO_MONITOR_JOB_ALLOWED_ROOTS", f'["{tmp_path}/catalogs"]')
    monkeypatch.setenv("GEO_MONITOR_JOB_ALLOWED_URL_PREFIXES", '["https://stac.example.org/v1"]')
    s = load_settings()
    assert s.resolved_job_roots == [(tmp_path / "catalogs").resolve()]
    assert s.public_view()["job_allowed_url_prefixes"] == ["https://stac.example.org/v1"]


@pytest.mark.parametrize("prefix", ["ftp://stac.example.org", "https://", "https://user:pw@stac.example.org/v1"])
def test_job_url_prefixes_must_be_http_urls_with_a_host_and_no_credentials(prefix: str) -> None:
    message = _one_line_config_error(GEO_MONITOR_JOB_ALLOWED_URL_PREFIXES=f'["{prefix}"]')
    assert "job_allowed_url_prefixes" in message


def test_job_lease_must_be_at_least_a_second() -> None:
    assert "job_lease_s" in _one_line_config_error(GEO_MONITOR_JOB_LEASE_S="0.1")


def test_info_shows_every_setting_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_MONITOR_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("GEO_MONITOR_RATE_LIMIT_STORAGE_URI", "redis://cache:hunter2@redis.internal:6379")
    monkeypatch.setenv("GEO_MONITOR_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1,10.0.0.0/8")
    view = load_settings().public_view()
    missing = set(Settings.model_fields) - set(view)
    assert missing == set(), f"geo-monitor info does not show {sorted(missing)}"
    assert view["webhook_allowed_hosts"] == ["127.0.0.1", "10.0.0.0/8"]
    assert view["webhook_max_attempts"] == 8 and view["rate_limit"] == "600/minute"
    text = repr(view)
    assert "k" * 40 not in text and "hunter2" not in text
