"""The map viewer's Content-Security-Policy, from settings.

Everything comes from this origin: scripts and styles are files (no inline
code, no ``'unsafe-inline'``, no ``eval``); MapLibre runs its CSP build with
its worker as a same-origin file, so ``worker-src 'self'`` suffices, and it
turns tiles into ``blob:`` images, and its CSS holds ``data:`` icons. The one
outside origin ever allowed is the basemap's, and only when a deployment
configures one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from geo_monitor.settings import Settings


def basemap_origin(settings: Settings) -> str | None:
    """``scheme://host[:port]`` of the configured basemap, or None (offline basemap)."""
    if not settings.basemap_url:
        return None
    parts = urlsplit(settings.basemap_url)  # the settings check keeps {z}/{x}/{y} out of the host
    return f"{parts.scheme}://{parts.netloc}"


def viewer_csp(settings: Settings) -> str:
    """The policy header value for every viewer page, fragment and static file."""
    extra = basemap_origin(settings)
    outside = f" {extra}" if extra else ""
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob:{outside}",
        f"connect-src 'self'{outside}",
        "worker-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
    return "; ".join(directives)
