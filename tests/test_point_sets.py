"""The viewer's cache of encoded point sets (web/point_sets.py): built once per key, even when asked twice at once."""

from __future__ import annotations

import gzip
import json
import threading
import time

import pytest

from web.point_sets import PointSetCache


def test_a_set_being_prepared_is_waited_for_not_built_again() -> None:
    cache = PointSetCache()
    builds: list[str] = []
    release = threading.Event()

    def build() -> bytes:
        builds.append(threading.current_thread().name)
        release.wait(5)  # a slow build: the request arrives while it runs
        return json.dumps({"count": 1, "ids": ["gm-a"]}).encode()

    cache.prepare("key", build)
    answers: list[bytes] = []
    reader = threading.Thread(target=lambda: answers.append(cache.get("key", build).payload))
    reader.start()
    time.sleep(0.1)
    assert answers == []  # still waiting for the prepared build
    release.set()
    reader.join(5)
    assert len(builds) == 1 and builds[0] == "gm-point-set"
    assert json.loads(answers[0]) == {"count": 1, "ids": ["gm-a"]}


def test_gzipped_copy_is_the_payload_and_later_gets_smaller() -> None:
    cache = PointSetCache()
    body = json.dumps({"ids": [f"gm-{i:016x}" for i in range(20_000)]}).encode()
    first = cache.get("key", lambda: body)
    assert gzip.decompress(first.gzipped) == first.payload
    deadline = time.monotonic() + 10
    while cache.get("key", lambda: pytest.fail("built twice")).gzipped == first.gzipped:
        assert time.monotonic() < deadline, "never recompressed"
        time.sleep(0.05)
    later = cache.get("key", lambda: pytest.fail("built twice"))
    assert gzip.decompress(later.gzipped) == first.payload and len(later.gzipped) < len(first.gzipped)
    assert later.etag == first.etag


def test_a_failed_build_reaches_its_readers_and_the_next_request_retries() -> None:
    cache = PointSetCache()

    def broken() -> bytes:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="went away"):
        cache.get("key", broken)
    assert cache.get("key", lambda: b"{}").payload == b"{}"


def test_only_the_latest_entries_are_kept() -> None:
    cache = PointSetCache(entries=2)
    for key in ("a", "b", "c"):
        cache.get(key, lambda key=key: key.encode())
    rebuilt: list[str] = []
    cache.get("a", lambda: rebuilt.append("a") or b"a")
    cache.get("c", lambda: rebuilt.append("c") or b"c")
    assert rebuilt == ["a"]
