"""Headless Debian chromium driven by Playwright, for the map viewer's browser tests.

Never ``playwright install``: the browser is Debian's package (``.ci/run``
installs it), launched by path. Locally, without chromium, the tests skip;
on CI (``CI=true``) a missing browser fails them, so they can never pass by
not running.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: Where the tests save the screenshots docs/viewer.md shows.
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "img"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def chromium_path() -> str:
    found = os.environ.get("GEO_MONITOR_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found and Path(found).exists():
        return found
    message = "Debian's chromium is needed for the browser tests: apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class PageWatch:
    """What went wrong on a page: console errors, uncaught exceptions, CSP violations, outside requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def csp_violations(self, page: Any) -> list[str]:
        return list(page.evaluate("window.__cspViolations || []"))

    def assert_clean(self, page: Any, *, allow_console: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.console_errors if not any(a in e for a in allow_console)]
        assert self.page_errors == [], self.page_errors
        assert self.csp_violations(page) == []
        assert errors == [], errors


#: Runs before any page script: records CSP violations the page would otherwise only log.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def watch(page: Any, *, block_outside: bool = True) -> PageWatch:
    """Collect errors on ``page``; with ``block_outside`` every non-loopback request is aborted (no internet)."""
    seen = PageWatch()
    page.add_init_script(CSP_RECORDER)
    page.on("console", lambda m: seen.console_errors.append(f"{m.text} @ {m.location.get('url', '')}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.page_errors.append(str(e)))

    def route(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOOPBACK or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            seen.outside_requests.append(route.request.url)
            route.abort("internetdisconnected")

    if block_outside:
        page.route("**/*", route)
    return seen


def log_in(page: Any, base_url: str, username: str, password: str, path: str = "/") -> None:
    """Open ``path``, get sent to the login form, log in, and wait until the alerts are drawn."""
    page.goto(base_url + path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    wait_drawn(page)


def wait_drawn(page: Any, timeout_ms: float = 30_000) -> int:
    page.wait_for_selector("html[data-alerts-state=drawn]", state="attached", timeout=timeout_ms)
    return int(page.evaluate("document.documentElement.dataset.alertsDrawn"))


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path
