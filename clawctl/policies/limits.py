"""Per-agent request limits: a token bucket, decided from explicit times. Pure.

An agent may make ``rate`` requests per second on average, in bursts of up to
``burst``; beyond that a request is refused (rate-limited), never queued, so
one agent cannot exhaust the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Bucket:
    """``tokens`` left at ``at`` (seconds)."""

    tokens: float
    at: float


def take(bucket: Bucket | None, *, now: float, rate: float, burst: float) -> tuple[bool, Bucket]:
    """Whether one request may go now, and the bucket after it. A new bucket starts full; a
    clock that went backwards refills nothing."""
    if bucket is None:
        bucket = Bucket(burst, now)
    tokens = min(burst, bucket.tokens + max(0.0, now - bucket.at) * rate)
    if tokens >= 1.0 - 1e-9:  # float sums of small refills must not lose a request
        return True, Bucket(max(0.0, tokens - 1.0), now)
    return False, replace(bucket, tokens=tokens, at=max(now, bucket.at))
