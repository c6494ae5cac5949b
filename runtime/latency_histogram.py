"""Percentiles of a stream of latencies in fixed memory, for processes that run for months.

Values fall into logarithmic buckets, each ``RATIO`` times wider than the one below, so any percentile is
known to within half a bucket (about 1 %) whatever the number of values, and the memory is one integer per
bucket ever hit (at most ``BUCKETS``). Count, sum, minimum and maximum are kept exactly. Deterministic (no
sampling), and two histograms merge by adding counts, so per-stream figures roll up into totals.

    ttft = LatencyHistogram()
    for answer in answers:
        ttft.add(answer.ttft_ms)
    ttft.quantile(0.5), ttft.quantile(0.9), ttft.max
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

RATIO = 1.02  # bucket width: a percentile lies within +-1 % of the true value
SMALLEST = 1e-3  # values at or below this (in the caller's unit) share the first bucket
BUCKETS = 1 + math.ceil(math.log(1e12 / SMALLEST) / math.log(RATIO))  # up to 1e12: ~31 years in ms
_LOG_RATIO = math.log(RATIO)


def bucket_of(value: float) -> int:
    if not value > SMALLEST:  # also NaN
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(value / SMALLEST) / _LOG_RATIO))


def bucket_middle(bucket: int) -> float:
    """The geometric middle of a bucket: the estimate every value in it is reported as."""
    if bucket == 0:
        return SMALLEST
    return SMALLEST * RATIO ** (bucket - 0.5)


@dataclass
class LatencyHistogram:
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    buckets: dict[int, int] = field(default_factory=dict)  # bucket -> values in it; at most BUCKETS keys

    def add(self, value: float) -> None:
        if math.isnan(value):
            return
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        bucket = bucket_of(value)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1

    def merge(self, other: LatencyHistogram) -> None:
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        for bucket, n in other.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """The value below which a fraction ``q`` (0..1) of the values lie (nearest rank); NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q}: give a fraction between 0 and 1")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))  # the rank-th smallest value, 1-based
        if rank == self.count:
            return self.max
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                # the extremes are known exactly; inside, a bucket's middle is within half a bucket
                return min(self.max, max(self.min, bucket_middle(bucket)))
        return self.max

    def as_dict(self) -> dict[str, float | int]:
        """count, mean, p50, p90, p99, max: what a summary line or a metrics endpoint reports."""
        return {"count": self.count, "mean": self.mean, "p50": self.quantile(0.5), "p90": self.quantile(0.9),
                "p99": self.quantile(0.99), "max": self.max if self.count else math.nan}
