"""Percentiles of the recorder and histogram match known distributions."""

from __future__ import annotations

import time

import pytest

from clients.loadtest.histogram import LatencyHistogram, quantize_us
from clients.loadtest.recorder import Correctness, Recorder, parse_text


def test_percentiles_of_a_uniform_distribution() -> None:
    histogram = LatencyHistogram()
    for value in range(1, 100_001):
        histogram.record_us(value)
    summary = histogram.summary_ms()
    assert summary["p50"] == pytest.approx(50.0, rel=1e-3)
    assert summary["p90"] == pytest.approx(90.0, rel=1e-3)
    assert summary["p99"] == pytest.approx(99.0, rel=1e-3)
    assert summary["p99_9"] == pytest.approx(99.9, rel=1e-3)
    assert summary["max"] == pytest.approx(100.0, rel=1e-3)
    assert summary["count"] == 100_000


def test_quantized_latencies_stay_within_a_fifth_of_a_percent() -> None:
    for value in (1, 999, 1023, 1024, 5_000, 123_456, 98_765_432):
        assert 0 <= value - quantize_us(value) <= value * 0.001


def test_histograms_merge_through_their_encoding() -> None:
    low, high = LatencyHistogram(), LatencyHistogram()
    for value in range(1, 1001):
        low.record_us(value)
        high.record_us(value + 1000)
    merged = LatencyHistogram.decode(low.encode())
    merged.add(LatencyHistogram.decode(high.encode()))
    assert merged.count == 2000
    assert merged.percentile_ms(50) == pytest.approx(1.0, rel=1e-3)
    assert LatencyHistogram.decode(LatencyHistogram().encode()).summary_ms()["max"] == 0


def test_recorder_latency_follows_the_send_time_in_the_text() -> None:
    recorder = Recorder()
    now = time.time_ns()
    for seq in range(1000):  # sent 1..1000 ms ago
        recorder.delivered(7, f"lt:3:{seq}:{now - (seq + 1) * 1_000_000}")
    count, interval = recorder.take_interval()
    assert count == 1000
    assert interval.summary_ms() == recorder.histogram.summary_ms()
    summary = recorder.histogram.summary_ms()
    assert summary["p50"] == pytest.approx(500, abs=25)
    assert summary["p99"] == pytest.approx(990, abs=25)
    assert recorder.deliveries == 1000


def test_recorder_counts_missed_duplicated_and_unexpected() -> None:
    recorder = Recorder()
    for seq in (0, 1, 1, 1, 3, 9):
        recorder.delivered(5, f"lt:2:{seq}:{time.time_ns()}")
    recorder.delivered(5, "someone's ordinary post")
    result = recorder.correctness([(5, (2,)), (6, (2,))], {2: [0, 1, 2, 3]})
    assert result == Correctness(expected=8, received=4, missed=1 + 4, duplicated=2, unexpected=1)
    assert recorder.deliveries == 4


@pytest.mark.parametrize("text", ["lt:1:2", "lt:a:1:2", "hello", "lt:1:2:x", ""])
def test_other_texts_are_not_load_test_posts(text: str) -> None:
    assert parse_text(text) is None
