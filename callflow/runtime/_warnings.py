"""The rate limits on what Plivo's side of a call can make the runtime log, repeatedly.

Per call (the key is the call's ``call=<id>`` label), the first 10 unreadable messages and the
first 10 unknown events and the first 10 out-of-order events (a second ``start``) of each
minute are logged, each with its text escaped and bounded
(:mod:`callflow.observe`); the rest are counted (``callflow_log_lines_suppressed_total``,
kinds ``unreadable``, ``unknown_event`` and ``out_of_order``) and summed up in one line when
the minute ends or the call does (:func:`flush`). At most 200 such lines a minute are
written across all calls.
"""

from __future__ import annotations

import logging

from callflow.observe import WarningLimiter

log = logging.getLogger("callflow.call")


UNREADABLE = WarningLimiter(log, "unreadable", "unreadable messages")
UNKNOWN_EVENTS = WarningLimiter(log, "unknown_event", "unknown events")
OUT_OF_ORDER = WarningLimiter(log, "out_of_order", "out-of-order events")


def flush(key: str) -> None:
    """Write the call's summaries of what was held back (at the end of the call)."""
    UNREADABLE.flush(key)
    UNKNOWN_EVENTS.flush(key)
    OUT_OF_ORDER.flush(key)


def reset() -> None:
    """Start every limit afresh (between tests: each sees its own first lines)."""
    UNREADABLE.reset()
    UNKNOWN_EVENTS.reset()
    OUT_OF_ORDER.reset()
