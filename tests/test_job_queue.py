"""The job queue on both back-ends (SQLite file, PostGIS schema): claims, leases, retries, cancel, idempotency.

Time is a clock the test moves, so leases and backoffs are checked exactly
without sleeping; the races use real processes on the real database.
"""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from geo_monitor.errors import InvalidInputError
from geo_monitor.store import (
    AlertStore,
    JobConflictError,
    JobNotFoundError,
    JobPolicy,
    JobQueue,
    LeaseLostError,
)

PARAMS = {"bbox": [-77.5, -1.0, -77.49, -0.99], "start": "2024-01-01", "end": "2024-06-30"}
POLICY = JobPolicy(lease_s=30, max_attempts=3, backoff_s=10, backoff_max_s=1000)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(alert_store: AlertStore, clock: Clock) -> JobQueue:
    return JobQueue.from_store(alert_store, POLICY, clock=clock)


def _messages(queue: JobQueue, job_id: str) -> list[str]:
    return [line["message"] for line in queue.logs(job_id)]


def test_a_submitted_job_waits_accepted_with_its_parameters_and_a_log(queue: JobQueue) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    assert (job.state, job.kind, job.progress, job.attempts, job.max_attempts) == ("accepted", "detect", 0, 0, 3)
    stored = queue.get(job.id)
    assert stored is not None and stored.parameters == PARAMS and stored.requested_by == "ana"
    assert [j.id for j in queue.list()] == [job.id]
    assert _messages(queue, job.id) == ["submitted by ana"]
    assert queue.counts()["accepted"] == 1


def test_unknown_kinds_users_and_keys_are_refused(queue: JobQueue) -> None:
    with pytest.raises(InvalidInputError, match="job kind must be one of detect, replay, retrain"):
        queue.submit("format-disk", PARAMS, "ana")
    with pytest.raises(InvalidInputError, match="user"):
        queue.submit("detect", PARAMS, " ")
    with pytest.raises(InvalidInputError, match="idempotency key"):
        queue.submit("detect", PARAMS, "ana", idempotency_key="x" * 300)
    assert queue.list() == []


def test_the_same_idempotency_key_gives_the_same_job(queue: JobQueue) -> None:
    first = queue.submit("detect", PARAMS, "ana", idempotency_key="click-1")
    again = queue.submit("detect", dict(PARAMS), "ana", idempotency_key="click-1")
    assert again.id == first.id and len(queue.list()) == 1
    # Keys belong to their user: another analyst's "click-1" is another request.
    other = queue.submit("detect", PARAMS, "luis", idempotency_key="click-1")
    assert other.id != first.id
    with pytest.raises(JobConflictError, match="already used for job"):
        queue.submit("detect", {**PARAMS, "end": "2024-07-31"}, "ana", idempotency_key="click-1")
    assert len(queue.list()) == 2


def _submit_with_key(url: str, start: Any, results: Any) -> None:
    queue = JobQueue.from_url(url, POLICY)
    start.wait()
    results.put(queue.submit("detect", PARAMS, "ana", idempotency_key="double-click").id)
    queue.engine.dispose()


def test_the_same_key_sent_at_once_by_several_processes_makes_one_job(queue: JobQueue, store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_submit_with_key, args=(store_url, start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    ids = {results.get(timeout=5) for _ in procs}
    assert len(ids) == 1 and [j.id for j in queue.list()] == list(ids)


def test_claims_take_the_oldest_due_job_once(queue: JobQueue, clock: Clock) -> None:
    first = queue.submit("detect", PARAMS, "ana")
    clock.advance(1)
    second = queue.submit("detect", PARAMS, "ana")
    a = queue.claim("worker-a")
    b = queue.claim("worker-b")
    assert a is not None and b is not None and a.job.id == first.id and b.job.id == second.id
    assert a.token != b.token and a.job.state == "running" and a.attempt == 1
    assert a.lease_expires_at == clock.now + timedelta(seconds=POLICY.lease_s)
    assert queue.claim("worker-c") is None
    job = queue.get(first.id)
    assert job is not None and job.lease_owner == "worker-a" and job.started_at == clock.now


def _claim_once(url: str, name: str, start: Any, results: Any) -> None:
    queue = JobQueue.from_url(url, POLICY)
    start.wait()
    claim = queue.claim(name)
    results.put((name, None if claim is None else claim.job.id))
    queue.engine.dispose()


def test_workers_racing_for_one_job_exactly_one_gets_it(queue: JobQueue, store_url: str) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_once, args=(store_url, f"w{i}", start, results)) for i in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    got = [results.get(timeout=5) for _ in procs]
    winners = [name for name, claimed in got if claimed == job.id]
    assert len(winners) == 1, got
    stored = queue.get(job.id)
    assert stored is not None and stored.lease_owner == winners[0] and stored.attempts == 1


def test_heartbeats_renew_the_lease_and_report_progress(queue: JobQueue, clock: Clock) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    claim = queue.claim("worker-a")
    assert claim is not None
    clock.advance(20)
    beat = queue.heartbeat(job.id, claim.token, 40, "updating change state")
    assert not beat.lease_lost and not beat.cancel_requested
    assert beat.lease_expires_at == clock.now + timedelta(seconds=POLICY.lease_s)
    clock.advance(20)  # 40 s after the claim: alive only thanks to the heartbeat
    assert queue.claim("worker-b") is None
    stored = queue.get(job.id)
    assert stored is not None and (stored.progress, stored.message) == (40, "updating change state")
    assert "updating change state" in _messages(queue, job.id)
    with pytest.raises(InvalidInputError, match="progress"):
        queue.heartbeat(job.id, claim.token, 101)


def test_an_expired_lease_is_taken_over_and_the_stale_worker_is_refused(queue: JobQueue, clock: Clock) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    stale = queue.claim("worker-a")
    assert stale is not None
    clock.advance(POLICY.lease_s + 1)
    fresh = queue.claim("worker-b")
    assert fresh is not None and fresh.job.id == job.id and fresh.attempt == 2 and fresh.token != stale.token
    # The first worker wakes up and tries to finish: refused, whatever it says.
    assert queue.heartbeat(job.id, stale.token, 90).lease_lost
    with pytest.raises(LeaseLostError, match="held by worker-b"):
        queue.complete(job.id, stale.token, {"alerts": 0})
    with pytest.raises(LeaseLostError):
        queue.fail(job.id, stale.token, "late failure")
    with pytest.raises(LeaseLostError):
        queue.release(job.id, stale.token)
    done = queue.complete(job.id, fresh.token, {"alerts_new": 3})
    assert (done.state, done.progress, done.result, done.lease_owner) == ("successful", 100, {"alerts_new": 3}, "worker-b")
    with pytest.raises(LeaseLostError, match="successful"):
        queue.complete(job.id, fresh.token, {"alerts_new": 3})
    assert any("lease of worker-a expired" in m for m in _messages(queue, job.id))


def test_failures_retry_with_growing_gaps_then_fail_with_the_reason(queue: JobQueue, clock: Clock) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    clock.advance(1)
    other = queue.submit("detect", PARAMS, "luis")
    gaps = []
    for attempt in (1, 2):
        claim = queue.claim("worker-a")
        assert claim is not None and claim.job.id == job.id and claim.attempt == attempt
        failed = queue.fail(job.id, claim.token, "catalog unreachable")
        assert failed.state == "accepted" and failed.error == "catalog unreachable"
        gaps.append((failed.next_attempt_at - clock.now).total_seconds())
        # Not due yet: the queue serves the other job meanwhile.
        served = queue.claim("worker-b")
        if attempt == 1:
            assert served is not None and served.job.id == other.id
            queue.complete(other.id, served.token, {})
        else:
            assert served is None
        clock.advance(gaps[-1])
    assert 7.5 <= gaps[0] <= 10 and 15 <= gaps[1] <= 20 and gaps[1] > gaps[0]
    last = queue.claim("worker-a")
    assert last is not None and last.attempt == 3
    final = queue.fail(job.id, last.token, "catalog unreachable")
    assert (final.state, final.error, final.attempts) == ("failed", "catalog unreachable", 3)
    assert final.finished_at == clock.now
    clock.advance(10_000)
    assert queue.claim("worker-a") is None
    assert sum("failed" in m for m in _messages(queue, job.id)) == 3


def test_a_permanent_error_is_not_retried(queue: JobQueue) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    claim = queue.claim("worker-a")
    assert claim is not None
    final = queue.fail(job.id, claim.token, "bbox outside Ecuador", retry=False)
    assert (final.state, final.attempts) == ("failed", 1)


def test_a_worker_lost_on_the_last_attempt_fails_the_job(queue: JobQueue, clock: Clock) -> None:
    job = queue.submit("detect", PARAMS, "ana", max_attempts=1)
    assert queue.claim("worker-a") is not None
    clock.advance(POLICY.lease_s + 1)
    assert queue.claim("worker-b") is None
    stored = queue.get(job.id)
    assert stored is not None and stored.state == "failed" and "stopped answering" in (stored.error or "")


def test_cancelling_an_accepted_job_dismisses_it_at_once(queue: JobQueue) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    cancelled = queue.cancel(job.id, "luis")
    assert cancelled.state == "dismissed" and cancelled.cancel_requested
    assert queue.claim("worker-a") is None
    assert queue.cancel(job.id, "luis").state == "dismissed"  # again: nothing changes
    with pytest.raises(JobNotFoundError):
        queue.cancel("no-such-job", "luis")


def test_cancelling_a_running_job_asks_its_worker_to_stop(queue: JobQueue, clock: Clock) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    claim = queue.claim("worker-a")
    assert claim is not None
    asked = queue.cancel(job.id, "ana")
    assert asked.state == "running" and asked.cancel_requested
    beat = queue.heartbeat(job.id, claim.token, 50)
    assert beat.cancel_requested and not beat.lease_lost
    done = queue.dismiss(job.id, claim.token)
    assert done.state == "dismissed" and done.finished_at == clock.now
    finished = queue.submit("detect", PARAMS, "ana")
    claim2 = queue.claim("worker-a")
    assert claim2 is not None and claim2.job.id == finished.id
    queue.complete(finished.id, claim2.token, {})
    with pytest.raises(JobConflictError, match="already successful"):
        queue.cancel(finished.id, "ana")


def test_a_failure_or_release_after_a_cancel_request_dismisses(queue: JobQueue) -> None:
    for end in ("fail", "release"):
        job = queue.submit("detect", PARAMS, "ana")
        claim = queue.claim("worker-a")
        assert claim is not None
        queue.cancel(job.id, "ana")
        after = queue.fail(job.id, claim.token, "interrupted") if end == "fail" else queue.release(job.id, claim.token)
        assert after.state == "dismissed", end


def test_cancelling_a_job_whose_worker_vanished_dismisses_it_at_once(queue: JobQueue, clock: Clock) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    assert queue.claim("worker-a") is not None
    clock.advance(POLICY.lease_s + 1)
    assert queue.cancel(job.id, "ana").state == "dismissed"


def test_a_released_job_is_due_again_without_using_an_attempt(queue: JobQueue) -> None:
    job = queue.submit("detect", PARAMS, "ana")
    claim = queue.claim("worker-a")
    assert claim is not None
    released = queue.release(job.id, claim.token, "SIGTERM")
    assert (released.state, released.attempts, released.progress) == ("accepted", 0, 0)
    again = queue.claim("worker-b")
    assert again is not None and again.job.id == job.id and again.attempt == 1


def test_jobs_of_one_scope_never_run_at_once(queue: JobQueue, clock: Clock) -> None:
    first = queue.submit("detect", PARAMS, "ana", scope="state:napo-2024")
    clock.advance(1)
    second = queue.submit("detect", PARAMS, "luis", scope="state:napo-2024")
    clock.advance(1)
    elsewhere = queue.submit("detect", PARAMS, "luis", scope="state:zamora-2024")
    a = queue.claim("worker-a")
    b = queue.claim("worker-b")
    assert a is not None and a.job.id == first.id
    assert b is not None and b.job.id == elsewhere.id  # the same-scope job waits, the queue goes on
    assert queue.claim("worker-c") is None
    queue.complete(first.id, a.token, {})
    c = queue.claim("worker-c")
    assert c is not None and c.job.id == second.id


def test_listing_filters_by_user_and_state(queue: JobQueue, clock: Clock) -> None:
    a = queue.submit("detect", PARAMS, "ana")
    clock.advance(1)
    b = queue.submit("detect", PARAMS, "luis")
    queue.cancel(b.id, "luis")
    assert [j.id for j in queue.list()] == [b.id, a.id]  # newest first
    assert [j.id for j in queue.list(requested_by="ana")] == [a.id]
    assert [j.id for j in queue.list(states=["dismissed"])] == [b.id]
    with pytest.raises(InvalidInputError, match="state must be one of"):
        queue.list(states=["done"])
    with pytest.raises(InvalidInputError, match="limit"):
        queue.list(limit=0)
