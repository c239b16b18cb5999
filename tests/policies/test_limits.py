"""The token bucket: bursts up to ``burst``, then ``rate`` per second, never more."""

from __future__ import annotations

from clawctl.policies.limits import take


def test_a_burst_then_the_rate() -> None:
    bucket = None
    allowed = 0
    for _ in range(50):
        ok, bucket = take(bucket, now=100.0, rate=10, burst=20)
        allowed += ok
    assert allowed == 20
    ok, bucket = take(bucket, now=100.05, rate=10, burst=20)
    assert not ok  # half a token
    ok, bucket = take(bucket, now=100.1, rate=10, burst=20)
    assert ok
    granted = 0
    for step in range(1, 101):  # 10 s at 10 requests per 0.1 s attempted
        for _ in range(10):
            ok, bucket = take(bucket, now=100.1 + step * 0.1, rate=10, burst=20)
            granted += ok
    assert 95 <= granted <= 100 + 20


def test_the_bucket_never_holds_more_than_the_burst_and_survives_a_clock_step_back() -> None:
    ok, bucket = take(None, now=0.0, rate=1000, burst=5)
    ok, bucket = take(bucket, now=3600.0, rate=1000, burst=5)
    assert bucket.tokens == 4.0
    ok, later = take(bucket, now=10.0, rate=1000, burst=5)  # the clock went back
    assert ok and later.tokens == 3.0
