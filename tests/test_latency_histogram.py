"""The fixed-memory latency histogram behind the demo's summary: percentiles within its stated accuracy
against numpy's exact ones, memory that stops growing, exact extremes, merging."""

import math

import numpy as np
import pytest

from nvila_edge.runtime.latency_histogram import BUCKETS, RATIO, LatencyHistogram


def filled(values) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(float(value))
    return histogram


def test_percentiles_are_within_half_a_bucket_of_the_exact_ones():
    values = np.random.default_rng(0).lognormal(mean=6, sigma=0.8, size=20_000)  # ms, long right tail
    histogram = filled(values)
    for q in (0.01, 0.25, 0.5, 0.9, 0.99):
        exact = np.quantile(values, q, method="inverted_cdf")
        assert histogram.quantile(q) == pytest.approx(exact, rel=RATIO - 1)
    assert (histogram.count, histogram.min, histogram.max) == (len(values), values.min(), values.max())
    assert histogram.quantile(1.0) == values.max() and histogram.mean == pytest.approx(values.mean())


def test_memory_stops_growing_with_the_number_of_values():
    histogram = LatencyHistogram()
    rng = np.random.default_rng(1)
    for _ in range(5):
        for value in rng.uniform(50, 5000, size=20_000):
            histogram.add(float(value))
        held = len(histogram.buckets)
    assert held == len(histogram.buckets) <= math.ceil(math.log(5000 / 50) / math.log(RATIO)) + 1 < BUCKETS
    for extreme in (0.0, -3.0, 1e-9, 1e30):  # clock steps, a stuck stream: counted, never a new kind of entry
        histogram.add(extreme)
    assert len(histogram.buckets) <= held + 2 and histogram.min == -3.0 and histogram.max == 1e30


def test_merged_histograms_equal_one_fed_everything():
    rng = np.random.default_rng(2)
    a_values, b_values = rng.uniform(1, 100, 500), rng.uniform(80, 900, 300)
    merged = filled(a_values)
    merged.merge(filled(b_values))
    together = filled(np.concatenate([a_values, b_values]))
    assert merged.total == pytest.approx(together.total)  # the same sum, added in another order
    merged.total = together.total
    assert merged == together


def test_empty_and_nan():
    histogram = LatencyHistogram()
    histogram.add(math.nan)
    assert histogram.count == 0 and math.isnan(histogram.quantile(0.5)) and math.isnan(histogram.as_dict()["max"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram.quantile(50)
