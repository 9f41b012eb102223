"""Settings: the one place configuration is read, validated and defaulted.

Sources, highest priority first: environment variables prefixed
``GEO_MONITOR_`` (plus the conventional ``DATABASE_URL`` and
``DASK_SCHEDULER_ADDRESS``), then a TOML file named by ``GEO_MONITOR_CONFIG``
(or ``geo-monitor.toml`` in the working directory), then defaults. Everything
is checked at start-up so that a typo fails with a clear message before any
work starts.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
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
#: A host name or an IP address (v4, or v6 with or without brackets).
_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+(%\w+)?$")
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
    model_file: Path | None = Field(
        default=None,
        description="The site model detection uses (a JSON model, e.g. one a retrain job wrote under "
                    "data_dir/models/); default models_dir/mining_score_v1.json.",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Seconds a webhook receiver gets to answer.")
    webhook_max_attempts: int = Field(default=8, ge=1, le=50, description="Tries before a delivery is marked failed.")
    webhook_backoff_s: float = Field(default=30.0, gt=0, description="Longest wait before the first retry; doubles per try.")
    webhook_backoff_max_s: float = Field(default=6 * 3600.0, gt=0, description="Cap on the wait between retries.")
    webhook_poll_s: float = Field(default=5.0, gt=0, le=3600, description="How often the dispatcher looks for due deliveries.")
    job_lease_s: float = Field(default=60.0, ge=1, le=3600, description="How long a worker's claim on a job lasts without a heartbeat; another worker takes the job over after that.")
    job_max_attempts: int = Field(default=3, ge=1, le=20, description="Tries of a job before it is marked failed.")
    job_backoff_s: float = Field(default=30.0, gt=0, description="Wait before the first retry of a failed job; doubles per try.")
    job_backoff_max_s: float = Field(default=3600.0, gt=0, description="Cap on the wait between retries of a job.")
    job_poll_s: float = Field(default=2.0, gt=0, le=600, description="How often an idle worker looks for jobs.")
    job_max_area_km2: float = Field(default=2500.0, gt=0, description="Largest bbox one detect job may cover.")
    job_retrain_max_seeds: int = Field(default=8, ge=1, le=64, description="Most training areas (seeds) one retrain job may build.")
    job_retrain_presets: list[str] = Field(
        default_factory=lambda: ["small"],
        description="Sample-area presets a retrain job may build its training areas from (small, full).",
    )
    job_allowed_roots: list[Path] | None = Field(
        default=None,
        description="Local folders a job's catalog and context may be under; default the sample dir and data_dir.",
    )
    job_allowed_url_prefixes: list[str] = Field(
        default_factory=list,
        description="http(s) URL prefixes a job's catalog may start with (e.g. a STAC API); default none.",
    )
    webhook_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Webhook destinations allowed although not public (SSRF guard exceptions): host names, "
        "IP addresses or CIDR networks, comma-separated in the environment. Default: none.",
    )
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
    alert_index: bool = Field(
        default=True,
        description="Answer API pages from an in-memory index of the alerts in each web process "
        "(~0.8 GB resident per 100,000 alerts, feature texts included; see docs/store.md) instead of SQL.",
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
    # --- map viewer (issue 5) ---
    basemap_url: str | None = Field(
        default=None,
        description="XYZ raster tile template for the map's basemap, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; "
        "default none: the offline basemap (plain background, context layers, the app's own imagery tiles).",
    )
    basemap_attribution: str = Field(default="© OpenStreetMap contributors", max_length=300)
    frontend_dir: Path = Field(
        default=_REPO_ROOT / "node_modules",
        description="node_modules folder holding the viewer's npm libraries (maplibre-gl), filled by `make install`.",
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

    @field_validator("job_allowed_url_prefixes")
    @classmethod
    def _check_url_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            parts = urlsplit(prefix)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
                raise ValueError(f"{prefix!r} must be an http(s) URL prefix with a host and no credentials")
        return value

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_allowed_hosts(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: "127.0.0.1, hooks.example.org, 10.0.0.0/8"
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            text = entry.strip()
            if "/" in text:
                try:
                    ipaddress.ip_network(text, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not a CIDR network such as 10.0.0.0/8") from None
            elif not _HOST.match(text.strip("[]")):
                raise ValueError(f"{entry!r} is not a host name or IP address")
        return tuple(entry.strip() for entry in value)

    @field_validator("basemap_url")
    @classmethod
    def _check_basemap_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not re.match(r"^https?://[^/\s'\";{}]+/[^\s'\";]*$", value) or not all(p in value for p in ("{z}", "{x}", "{y}")):
            raise ValueError("must be an http(s) XYZ template containing {z}, {x} and {y}")
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

    @property
    def resolved_job_roots(self) -> list[Path]:
        """Folders a job's local inputs must be under (symlinks resolved)."""
        roots = self.job_allowed_roots or [self.resolved_sample_dir, self.resolved_data_dir]
        return [root.expanduser().resolve() for root in roots]

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
        """Every setting as shown by ``geo-monitor info``: derived values filled in, secrets masked."""
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
            "model_file": str(self.model_file) if self.model_file else None,
            "job_allowed_roots": [str(root) for root in self.resolved_job_roots],
            "job_allowed_url_prefixes": list(self.job_allowed_url_prefixes),
            "job_lease_s": self.job_lease_s,
            "job_max_attempts": self.job_max_attempts,
            "job_backoff_s": self.job_backoff_s,
            "job_backoff_max_s": self.job_backoff_max_s,
            "job_poll_s": self.job_poll_s,
            "job_max_area_km2": self.job_max_area_km2,
            "job_retrain_max_seeds": self.job_retrain_max_seeds,
            "job_retrain_presets": list(self.job_retrain_presets),
            **{f"{layer}_path": _path_or_none(getattr(self, f"{layer}_path")) for layer in CONTEXT_LAYERS},
            "log_level": self.log_level,
            "log_format": self.log_format,
            "webhook_timeout_s": self.webhook_timeout_s,
            "webhook_max_attempts": self.webhook_max_attempts,
            "webhook_backoff_s": self.webhook_backoff_s,
            "webhook_backoff_max_s": self.webhook_backoff_max_s,
            "webhook_poll_s": self.webhook_poll_s,
            "webhook_allowed_hosts": list(self.webhook_allowed_hosts) or "(none: public addresses only)",
            "secret_key": "***" if self.secret_key else "(generated in data_dir)",
            "public_read": self.public_read,
            "alert_index": self.alert_index,
            "rate_limit": self.rate_limit,
            "rate_limit_storage_uri": _mask_password(self.rate_limit_storage_uri),
            "max_request_bytes": self.max_request_bytes,
            "session_cookie_secure": self.session_cookie_secure,
            "basemap_url": self.basemap_url or "(offline basemap)",
            "basemap_attribution": self.basemap_attribution,
            "frontend_dir": str(self.frontend_dir),
            "tile_rate_limit": self.tile_rate_limit,
            "imagery_catalog_ttl_s": self.imagery_catalog_ttl_s,
        }


def _path_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path.expanduser().resolve())


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
