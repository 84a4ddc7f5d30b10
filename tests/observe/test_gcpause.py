"""callflow_gc_pause_seconds: every collection of the cycle collector, timed by generation."""

from __future__ import annotations

import gc

from callflow.observe import METRICS, _gcpause, flush_gc, render, watch_gc


def _count(generation: str) -> float:
    value = METRICS.registry.get_sample_value(
        "callflow_gc_pause_seconds_count", {"generation": generation}
    )
    return value or 0.0


def test_each_collection_is_observed_in_its_generation_after_a_flush() -> None:
    watch_gc()
    watch_gc()  # idempotent: one hook
    assert gc.callbacks.count(_gcpause._on_gc) == 1
    flush_gc()
    full, young = _count("2"), _count("0")
    gc.collect()
    gc.collect(0)
    assert _count("2") == full  # timed, not yet observed
    flush_gc()
    assert _count("2") >= full + 1
    assert _count("0") >= young + 1
    sum_2 = METRICS.registry.get_sample_value("callflow_gc_pause_seconds_sum", {"generation": "2"})
    assert sum_2 is not None
    assert sum_2 > 0


def test_a_scrape_flushes_what_was_timed() -> None:
    watch_gc()
    flush_gc()
    before = _count("1")
    gc.collect(1)
    text = render()[0].decode()
    assert _count("1") >= before + 1
    assert 'callflow_gc_pause_seconds_count{generation="1"}' in text
