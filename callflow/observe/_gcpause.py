"""The cycle collector's pauses as a metric: ``callflow_gc_pause_seconds`` by generation.

A collection stops the event loop, so every call waits it out (a full collection of a busy
server's objects is milliseconds). :func:`watch_gc` times each collection with a
``gc.callbacks`` hook; the hook only appends to a list (taking a metric's lock inside a
collection could deadlock with an update the collection interrupted), and :func:`flush_gc`
moves what it timed into the histogram: :func:`~callflow.observe.render` flushes before each
scrape, and the server's loop watchdog once a heartbeat.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Final

from callflow.observe._metrics import METRICS

__all__ = ["flush_gc", "watch_gc"]

_MAX_PENDING: Final = 4096
"""Pauses kept between flushes (more are dropped: a flush is due at least every second)."""

_began = 0.0
_pending: list[tuple[int, float]] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _began
    if phase == "start":
        _began = time.perf_counter()
    elif len(_pending) < _MAX_PENDING:
        _pending.append((info["generation"], time.perf_counter() - _began))


def watch_gc() -> None:
    """Time every collection from now on, in this process (idempotent)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


def flush_gc() -> None:
    """Observe the pauses timed since the last flush in ``callflow_gc_pause_seconds``."""
    if not _pending:
        return
    pauses = _pending[:]
    del _pending[: len(pauses)]
    histogram = METRICS.gc_pause_seconds
    for generation, seconds in pauses:
        histogram.labels(generation=str(generation)).observe(seconds)
