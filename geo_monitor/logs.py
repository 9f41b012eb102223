"""Logging set-up: one JSON object per line for machines, or plain text for people.

Operators ship geo-monitor's stderr to a log collector, so the default format
is JSON lines (``ts``, ``level``, ``logger``, ``msg`` plus any ``extra=``
fields, ``exc`` for a traceback). Library modules only ever call
``logging.getLogger(__name__)``; the command line calls
:func:`configure_logging` once with the level and format from settings.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, Final, Literal, TextIO

from geo_monitor.errors import ConfigError

LogFormat = Literal["json", "text"]

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS: Final[frozenset[str]] = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))
) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields a caller attached to ``record``."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS and not key.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 UTC with milliseconds: sortable, and unambiguous across the machines of a cluster."""
    moment = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks go in the ``exc`` field)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Extras never overwrite the four fields a collector indexes on.
        doc.update({k: v for k, v in extra_fields(record).items() if k not in doc})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: msg key=value ...`` for reading in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = extra_fields(record)
        if extras:
            line += " " + " ".join(f"{key}={value!r}" for key, value in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


_FORMATTERS: Final[dict[str, type[logging.Formatter]]] = {"json": JsonFormatter, "text": TextFormatter}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, so redirection (and pytest) see it."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return None


#: Libraries that log routine steps at INFO (pyogrio: one line per layer written).
_CHATTY_LIBRARIES: tuple[str, ...] = ("pyogrio", "rasterio", "fiona", "numexpr")  # numexpr: a thread note at import


def configure_logging(level: str | int = "INFO", fmt: LogFormat | str = "json") -> logging.Handler:
    """Send log records at ``level`` and above to stderr in ``fmt`` ("json" or "text").

    Idempotent: calling it again replaces the handler it installed before and
    leaves other handlers (a test harness's, an embedding application's) alone.
    Python warnings are routed through logging too, so they come out in the
    same format. Returns the installed handler.
    """
    formatter_cls = _FORMATTERS.get(str(fmt))
    if formatter_cls is None:
        raise ConfigError(f"log format must be one of {', '.join(_FORMATTERS)}; got {fmt!r}")
    if isinstance(level, str) and not isinstance(logging.getLevelName(level.upper()), int):
        raise ConfigError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(formatter_cls())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    logging.captureWarnings(True)
    return handler
