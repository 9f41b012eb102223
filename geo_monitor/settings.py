"""Settings: the one place configuration is read, validated and defaulted.

Sources, highest priority first: environment variables prefixed
``GEO_MONITOR_`` (plus the conventional ``DATABASE_URL`` and
``DASK_SCHEDULER_ADDRESS``), then a TOML file named by ``GEO_MONITOR_CONFIG``
(or ``geo-monitor.toml`` in the working directory), then defaults. Everything
is checked at start-up so that a typo fails with a clear message before any
work starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from geo_monitor.errors import ConfigError

ENV_PREFIX = "GEO_MONITOR_"
CONFIG_ENV = "GEO_MONITOR_CONFIG"
DEFAULT_CONFIG_FILE = "geo-monitor.toml"

#: Context layers and the file stem each is looked up under in a context folder.
CONTEXT_LAYERS: tuple[str, ...] = (
    "concessions",
    "protected_areas",
    "indigenous_territories",
    "rivers",
    "provinces",
)

_DASK_ADDRESS = re.compile(r"^(tcp|tls|inproc|ws|wss|ucx)://[^\s/]+(:\d+)?$")
#: One or more flask-limiter limits such as "600/minute" or "10 per second; 1000/hour".
_RATE_LIMIT = re.compile(
    r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*"
    r"([;,]\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*)*$"
)
_RATE_STORAGE_SCHEMES = ("memory://", "redis://", "rediss://", "redis+sentinel://", "redis+cluster://")
_REPO_ROOT = Path(__file__).resolve().parents[1]


def _config_file() -> Path | None:
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV} names {path}, which is not a file")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_FILE
    return local if local.is_file() else None


class Settings(BaseSettings):
    """Validated geo-monitor settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
    )

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for the alert store, change state, sample area and job files.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GEO_MONITOR_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="SQLAlchemy URL of the alert store; default a SQLite file in data_dir.",
    )
    dask_scheduler_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "GEO_MONITOR_DASK_SCHEDULER_ADDRESS", "DASK_SCHEDULER_ADDRESS", "dask_scheduler_address"
        ),
        description="Address of an existing Dask scheduler; default a LocalCluster.",
    )
    dask_workers: int = Field(default=2, ge=1, le=256, description="LocalCluster worker processes.")
    dask_threads_per_worker: int = Field(default=1, ge=1, le=64)
    stac_url: str | None = Field(
        default=None,
        description="STAC API URL or static catalog path/URL; default the sample catalog.",
    )
    stac_collection: str = Field(default="sentinel-2-l2a", min_length=1)
    max_cloud_cover: float = Field(default=100.0, ge=0.0, le=100.0)
    sample_dir: Path | None = Field(default=None, description="Where the sample area is built.")
    context_dir: Path | None = Field(
        default=None,
        description="Folder with concessions/protected_areas/... (.gpkg or .geojson); default the sample's.",
    )
    concessions_path: Path | None = None
    protected_areas_path: Path | None = None
    indigenous_territories_path: Path | None = None
    rivers_path: Path | None = None
    provinces_path: Path | None = None
    models_dir: Path = Field(default=_REPO_ROOT / "models")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Seconds a webhook receiver gets to answer.")
    webhook_max_attempts: int = Field(default=8, ge=1, le=50, description="Tries before a delivery is marked failed.")
    webhook_backoff_s: float = Field(default=30.0, gt=0, description="Longest wait before the first retry; doubles per try.")
    webhook_backoff_max_s: float = Field(default=6 * 3600.0, gt=0, description="Cap on the wait between retries.")
    webhook_poll_s: float = Field(default=5.0, gt=0, le=3600, description="How often the dispatcher looks for due deliveries.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # --- web application (issue 4) ---
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs sessions and paging cursors; default a random key kept in data_dir/secret_key.",
    )
    public_read: bool = Field(
        default=False,
        description="Let anyone read alerts without a key (an open-data deployment); writes still need a role.",
    )
    rate_limit: str = Field(
        default="600/minute",
        description="Requests allowed per API key, session user or (anonymous) client address.",
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where rate-limit counters live: memory:// (one process) or redis://host:6379 (shared).",
    )
    max_request_bytes: int = Field(
        default=1_000_000, ge=1024, le=100_000_000, description="Largest request body the web app reads."
    )
    session_cookie_secure: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (set behind TLS)."
    )
    # --- map imagery (issue 5) ---
    tile_rate_limit: str = Field(
        default="6000/minute",
        description="Requests per caller for map tiles and chips (a map view loads dozens at once); "
        "replaces rate_limit on those routes.",
    )
    imagery_catalog_ttl_s: float = Field(
        default=300.0, ge=0, le=86400,
        description="Seconds the web app keeps its index of the catalog's scenes before reading it again "
        "(new scenes show up after at most this long; 0 reads it on every request).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// SQLAlchemy URL")
        return value

    @field_validator("dask_scheduler_address")
    @classmethod
    def _check_dask_address(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not _DASK_ADDRESS.match(value):
            raise ValueError("must look like tcp://host:8786")
        return value

    @field_validator("stac_url")
    @classmethod
    def _check_stac_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if "://" in value and not value.startswith(("http://", "https://", "file://")):
            raise ValueError("must be an http(s) URL or a local path")
        return value

    @field_validator("rate_limit", "tile_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if not _RATE_LIMIT.match(value):
            raise ValueError("must look like 600/minute or '10 per second; 1000/hour'")
        return value.strip()

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _check_rate_limit_storage(cls, value: str) -> str:
        if not value.startswith(_RATE_STORAGE_SCHEMES):
            raise ValueError("must be memory:// or a redis:// URI")
        return value

    # Derived values: defaults that depend on other settings.

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_sample_dir(self) -> Path:
        return (self.sample_dir or self.resolved_data_dir / "sample").expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'geo-monitor.sqlite'}"

    @property
    def resolved_stac_url(self) -> str:
        return self.stac_url or str(self.resolved_sample_dir / "catalog" / "catalog.json")

    @property
    def resolved_context_dir(self) -> Path:
        return (self.context_dir or self.resolved_sample_dir / "context").expanduser().resolve()

    def context_layer_path(self, layer: str) -> Path | None:
        """Path of one context layer: its own setting, else ``<context_dir>/<layer>.gpkg|.geojson``."""
        if layer not in CONTEXT_LAYERS:
            raise ConfigError(f"unknown context layer {layer!r}; expected one of {', '.join(CONTEXT_LAYERS)}")
        explicit: Path | None = getattr(self, f"{layer}_path")
        if explicit is not None:
            return explicit.expanduser().resolve()
        for suffix in (".gpkg", ".geojson"):
            candidate = self.resolved_context_dir / f"{layer}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def public_view(self) -> dict[str, Any]:
        """Settings as shown by ``geo-monitor info``: derived values filled in, secrets masked."""
        return {
            "data_dir": str(self.resolved_data_dir),
            "database_url": _mask_password(self.resolved_database_url),
            "dask_scheduler_address": self.dask_scheduler_address or "(LocalCluster)",
            "dask_workers": self.dask_workers,
            "dask_threads_per_worker": self.dask_threads_per_worker,
            "stac_url": self.resolved_stac_url,
            "stac_collection": self.stac_collection,
            "max_cloud_cover": self.max_cloud_cover,
            "sample_dir": str(self.resolved_sample_dir),
            "context_dir": str(self.resolved_context_dir),
            "models_dir": str(self.models_dir),
            "log_level": self.log_level,
            "log_format": self.log_format,
            "secret_key": "***" if self.secret_key else "(generated in data_dir)",
            "public_read": self.public_read,
            "rate_limit": self.rate_limit,
            "rate_limit_storage_uri": _mask_password(self.rate_limit_storage_uri),
            "max_request_bytes": self.max_request_bytes,
            "session_cookie_secure": self.session_cookie_secure,
            "tile_rate_limit": self.tile_rate_limit,
            "imagery_catalog_ttl_s": self.imagery_catalog_ttl_s,
        }


def _mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise :class:`ConfigError` with one readable line per problem."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
    except ValueError as exc:  # e.g. a malformed TOML file
        raise ConfigError(f"invalid settings: {exc}") from None
