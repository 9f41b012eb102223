"""One error format for every 4xx and 5xx: RFC 9457 ``application/problem+json``.

Library exceptions map to HTTP statuses in one table (:data:`STATUS_BY_ERROR`);
Flask's own errors (404, 405, 413, 429...) keep their status; anything else
is a 500 whose body says nothing about internals while the traceback goes to
the log.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from geo_monitor.errors import ConfigError, GeoMonitorError, ImageryUnavailableError, InvalidInputError, NotFoundError
from geo_monitor.store import JobConflictError, JobNotFoundError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: Base of the ``type`` URIs: relative, resolved against the server (RFC 9457 allows it).
TYPE_BASE = "/api/docs#problem-"


class Problem(Exception):
    """An error the web layer answers with a given status (403 forbidden, 409 conflict, ...)."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


#: Library error class -> HTTP status; the most specific class that matches wins (checked in order).
STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404),  # an alert, API key or webhook subscription
    (JobNotFoundError, 404),
    (JobConflictError, 409),  # cancelling a finished job; an idempotency key reused for other inputs
    (InvalidInputError, 400),
    (ImageryUnavailableError, 503),
    (ConfigError, 500),
    (GeoMonitorError, 500),
)

#: What a client is told for a server-side failure (the log has the details; the client gets no paths).
SERVER_DETAIL: dict[int, str] = {503: "imagery is unavailable: the server cannot read its imagery catalog; try later"}


def problem_response(status: int, detail: str | None = None, *, headers: dict[str, str] | None = None,
                     **extra: Any) -> Response:
    """A problem+json response; ``extra`` members (e.g. ``parameter``) are added as RFC 9457 extensions."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"{TYPE_BASE}{status}",
        "title": phrase,
        "status": status,
        "detail": detail or phrase,
        "instance": request.path if request else None,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_problem_handlers(app: Flask) -> None:
    """Route every error through :func:`problem_response`."""

    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc.status, exc.detail, headers=exc.headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {k: v for k, v in (exc.get_headers() or []) if k.lower() in ("allow", "retry-after")}
        detail = exc.description if status != 429 else f"rate limit exceeded ({exc.description}); retry later"
        return problem_response(status, detail, headers=headers)

    @app.errorhandler(GeoMonitorError)
    def _library(exc: GeoMonitorError) -> Response:
        status = next(code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls))
        if status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
            return problem_response(status, SERVER_DETAIL.get(status, "the server could not complete the request"))
        return problem_response(status, str(exc), parameter=getattr(exc, "parameter", None))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
        return problem_response(500, "the server could not complete the request; the error was logged")
