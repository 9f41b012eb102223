"""The library's one exception hierarchy.

Every error a user can cause (bad settings, a missing catalog, a bbox outside
Ecuador) is a :class:`GeoMonitorError` with a message written for that user.
The command line prints it on one line; the web layer maps each class to an
HTTP status in one table.
"""


class GeoMonitorError(Exception):
    """Base class of every error geo-monitor raises on purpose."""


class ConfigError(GeoMonitorError):
    """Settings are missing, malformed or inconsistent."""


class InvalidInputError(GeoMonitorError, ValueError):
    """A bbox, date, geometry or other parameter given by a user is not acceptable."""


class NotFoundError(InvalidInputError, LookupError):
    """What a user named (an alert, an API key, a webhook subscription, a scene) does not exist, or not for them.

    Still an :class:`InvalidInputError` (code that refuses bad input keeps
    refusing it) and a :class:`LookupError`; the web layer answers it with 404.
    """


class CatalogError(GeoMonitorError):
    """A STAC catalog or API cannot be opened or is not valid STAC."""


class SceneError(GeoMonitorError):
    """One scene cannot be used (missing asset, unreadable COG, wrong grid).

    Pipelines skip the scene, record the reason and go on.
    """


class SampleDataError(GeoMonitorError):
    """The sample area is missing, incomplete or differs from what its generator builds."""


class UnknownSceneError(NotFoundError):
    """A scene id that the configured imagery catalog does not know (the allow-list of imagery requests)."""


class ImageryUnavailableError(GeoMonitorError):
    """The configured imagery catalog cannot be read, so no scene can be looked up (a server-side problem)."""
