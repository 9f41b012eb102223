"""geo-monitor: watches Ecuador from Sentinel-2 imagery for new mining scars.

The library never imports Flask; the web application (``web``) and the Dask
pipelines (``pipelines``) build on it, and the command line wires them together.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geo-monitor")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
