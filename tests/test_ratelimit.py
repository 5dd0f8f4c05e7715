"""The rate limiter never exceeds its budget in any minute and uses nearly all of it (injected clock, no sleeps)."""

from __future__ import annotations

import pytest

from generator.ratelimit import Bucket, FakeClock, Limiter


def starts(clock: FakeClock, bucket: Bucket, n: int) -> list[float]:
    out = []
    for _ in range(n):
        clock.sleep(bucket.reserve())
        out.append(clock.now())
    return out


def max_in_window(times: list[float], window: float = 60.0) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("rpm", [1, 20, 50, 100, 600])
def test_never_exceeds_the_quota_in_any_minute(rpm: int) -> None:
    clock = FakeClock()
    times = starts(clock, Bucket(rpm, clock), rpm * 5)
    assert max_in_window(times) <= rpm
    # ...and uses at least 95% of it: 5 minutes' worth of requests take at most ~4 windows after the first burst.
    assert times[-1] <= 4 * 60 * 1.02 + 1e-6


def test_a_fresh_quota_is_used_at_once() -> None:
    clock = FakeClock()
    times = starts(clock, Bucket(20, clock), 20)
    assert times == [0.0] * 20


def test_throttle_pauses_for_retry_after_and_lowers_the_limit() -> None:
    clock = FakeClock()
    bucket = Bucket(60, clock)
    starts(clock, bucket, 3)
    pause = bucket.throttle(retry_after=7)
    assert pause == 7
    assert bucket.reserve() == pytest.approx(7)
    assert bucket.rate == pytest.approx(48)


def test_recovers_after_successes() -> None:
    clock = FakeClock()
    bucket = Bucket(100, clock)
    bucket.throttle(None)
    bucket.throttle(None)
    assert bucket.rate == pytest.approx(64)
    for _ in range(10):
        bucket.succeeded()
    assert bucket.rate == 100


def test_limit_never_drops_below_a_tenth() -> None:
    bucket = Bucket(100, FakeClock())
    for _ in range(50):
        bucket.throttle(0)
    assert bucket.rate == pytest.approx(10)


def test_a_lowered_limit_is_respected() -> None:
    clock = FakeClock()
    bucket = Bucket(100, clock)
    for _ in range(3):
        bucket.throttle(0)  # limit 51.2
    times = starts(clock, bucket, 300)
    assert max_in_window(times) <= 51


def test_limiter_spreads_over_locations() -> None:
    clock = FakeClock()
    limiter = Limiter(lambda model: 60, clock)
    used = [limiter.acquire("m", ["us-central1", "europe-west4"]) for _ in range(240)]
    assert used.count("us-central1") == used.count("europe-west4") == 120
    assert clock.now() == pytest.approx(60 * 1.02)  # two minutes' quota per location, one window to wait
    assert limiter.bucket("other", "us-central1").reserve() == 0  # separate models, separate quotas


def test_a_late_send_moves_its_slot() -> None:
    clock = FakeClock()
    bucket = Bucket(2, clock)
    first = bucket.reserve()  # slot at t=0
    clock.sleep(1.5)  # the first request is slow to leave (connection set-up, credentials)
    bucket.sent(0.0)
    bucket.reserve()  # the second slot, free at once
    # The third waits for the first to leave the window, counted from when it really left.
    assert first == 0
    assert clock.now() + bucket.reserve() == pytest.approx(1.5 + 60 * 1.02)
