"""Logging set-up: JSON lines with extras for collectors, text for people, idempotent."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from geo_monitor.errors import ConfigError
from geo_monitor.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_json_lines_with_extras_and_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("geo_monitor.test")
    log.debug("not shown")
    log.info("scene read", extra={"scene_id": "S2A_X", "seconds": 1.5, "msg_extra": {"a": 1}})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"ts", "level", "logger", "msg", "scene_id", "seconds", "msg_extra"}
    assert first["ts"].endswith("Z") and first["level"] == "INFO" and first["logger"] == "geo_monitor.test"
    assert (first["msg"], first["scene_id"], first["seconds"], first["msg_extra"]) == ("scene read", "S2A_X", 1.5, {"a": 1})
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_text_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "text")
    logging.getLogger("geo_monitor.test").debug("chunk done", extra={"chunk": 7})
    line = capsys.readouterr().err.strip()
    assert line.endswith("DEBUG geo_monitor.test: chunk done chunk=7")


def test_reconfiguring_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    configure_logging("WARNING", "json")
    log = logging.getLogger("geo_monitor.test")
    log.info("quiet")
    log.warning("once")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["once"]


def test_warnings_go_through_logging(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("odd input", UserWarning, stacklevel=1)
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["logger"] == "py.warnings" and "odd input" in record["msg"]


@pytest.mark.parametrize(("level", "fmt"), [("INFO", "xml"), ("LOUD", "json")])
def test_bad_configuration(level: str, fmt: str) -> None:
    with pytest.raises(ConfigError):
        configure_logging(level, fmt)
