"""The in-process rate-limit storage (``web.rate_storage``) under ``limits``' moving-window strategy."""

from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from web import rate_storage
from web.rate_storage import SCHEME, InProcessStorage


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(rate_storage.time, "time", fake)
    return fake


def test_the_scheme_names_this_storage() -> None:
    assert isinstance(storage_from_string(f"{SCHEME}://"), InProcessStorage)


def test_moving_window_allows_the_limit_in_any_window(clock: Clock) -> None:
    limiter = MovingWindowRateLimiter(InProcessStorage())
    three_a_minute = parse("3/minute")
    assert [limiter.hit(three_a_minute, "key-a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(three_a_minute, "key-b")  # per key
    clock.now += 30
    assert not limiter.hit(three_a_minute, "key-a")  # the first three are 30 s old: still in the window
    stats = limiter.get_window_stats(three_a_minute, "key-a")
    assert stats.remaining == 0 and stats.reset_time == pytest.approx(clock.now - 30 + 60)
    clock.now += 30.5
    assert limiter.hit(three_a_minute, "key-a")  # they left the window
    assert limiter.get_window_stats(three_a_minute, "key-a").remaining == 2  # only this hit is in it now


def test_remaining_and_clear(clock: Clock) -> None:
    limiter = MovingWindowRateLimiter(InProcessStorage())
    five_a_second = parse("5/second")
    for _ in range(3):
        assert limiter.hit(five_a_second, "k")
    assert limiter.get_window_stats(five_a_second, "k").remaining == 2
    assert limiter.test(five_a_second, "k")
    limiter.clear(five_a_second, "k")
    assert limiter.get_window_stats(five_a_second, "k").remaining == 5


def test_idle_keys_are_swept_and_no_thread_is_started(clock: Clock) -> None:
    storage = InProcessStorage()
    threads_before = threading.active_count()
    for number in range(100):
        assert storage.acquire_entry(f"client-{number}", 10, 60)
    assert threading.active_count() == threads_before
    clock.now += rate_storage.SWEEP_INTERVAL_S + 61
    assert storage.acquire_entry("someone-new", 10, 60)  # the sweep runs inline, with this hit
    assert set(storage._windows) == {"someone-new"}  # noqa: SLF001


def test_fixed_window_counters(clock: Clock) -> None:
    storage = InProcessStorage()
    assert storage.incr("c", 10) == 1 and storage.incr("c", 10) == 2
    assert storage.get("c") == 2 and storage.get_expiry("c") == clock.now + 10
    clock.now += 10
    assert storage.get("c") == 0
    assert storage.incr("c", 10) == 1  # a new window
    assert storage.reset() == 1 and storage.get("c") == 0
