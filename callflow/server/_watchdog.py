"""``LoopWatchdog``: a thread that notices when the trio event loop has not run for too long.

A flow that blocks (``time.sleep``, a synchronous HTTP client, a long CPU-bound loop) holds
the one event loop every call of the process shares: no key, no barge-in, no checkpoint ack
of any call is handled until it lets go. Nothing inside the loop can see that, so, as
asyncio's debug mode (``slow_callback_duration``) and gevent's monitor thread
(``max_blocking_time``) do, a thread outside it watches:

* a **heartbeat** task in the loop stores ``time.monotonic()`` every ``heartbeat`` seconds
  (50 ms by default: 20 task steps a second for the whole process, nothing per call or per
  frame);
* the **watchdog thread** wakes as often and, when the last beat is older than ``threshold``
  seconds, takes the stack of the loop's thread (``sys._current_frames()``, the innermost
  :data:`MAX_STACK_FRAMES` frames) while it is still held, finds the call it belongs to (the
  nearest :class:`~callflow.runtime.Call` and :class:`~callflow.Flow` among the stack's
  locals), logs one warning and counts it in ``callflow_event_loop_stalls_total``. One stall
  is logged once however long it lasts; the next beat ends it. The warning is one line, the
  stack in it innermost first (``file:line in function: source | …``), bounded to fit
  ``callflow.observe.MAX_LINE_CHARS``. At most :data:`MAX_REPORTS` stalls a minute are
  written (a process whose CPU is saturated stalls again and again, and its log should not
  drown); the rest are counted (``callflow_event_loop_stalls_total`` counts every stall,
  ``callflow_log_lines_suppressed_total{kind="loop_stall"}`` those not written) and summed up
  in one line at the next stall written.

The thread only reads: it never touches trio or a call. If the watchdog thread itself woke
late (a C extension kept the GIL, or the host did not schedule the process), the line says
so: the stack is then what runs once the thread got in, not necessarily what blocked.

Flows must not block: blocking work goes to a worker thread with
``await trio.to_thread.run_sync(fn, *args)`` (docs/dsl/README.md, "Flows must not block").
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import types

import trio

from callflow._flow import Flow
from callflow.observe import METRICS, Metrics, escape, flush_gc
from callflow.runtime import Call

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_STALL_THRESHOLD",
    "MAX_FRAME_CHARS",
    "MAX_REPORTS",
    "MAX_STACK_FRAMES",
    "REPORT_WINDOW",
    "LoopWatchdog",
]

log = logging.getLogger("callflow.server.watchdog")

DEFAULT_STALL_THRESHOLD = 0.5
"""Seconds the loop may go without running before it counts as held. The event-handling lag
p99 at full load is under 20 ms (docs/performance.md), so 0.5 s is 25 times anything a
healthy loop shows, and short enough that a caller would notice (a key waits that long for
its barge-in); asyncio's debug mode and gevent use 0.1 s, as development tools."""

DEFAULT_HEARTBEAT = 0.05
"""Seconds between heartbeats (and between the thread's checks)."""

MAX_STACK_FRAMES = 8
"""Innermost frames of the loop thread's stack written in a stall's log line."""

MAX_FRAME_CHARS = 120
"""Most characters of one frame (``file:line in function: source``) in that line."""

MAX_REPORTS = 5
"""Stalls written per :data:`REPORT_WINDOW`; the rest are counted and summed up."""

REPORT_WINDOW = 60.0
"""Seconds of the window :data:`MAX_REPORTS` counts in."""


class LoopWatchdog:
    """Watches the trio loop it runs in; see the module doc.

    ``threshold``: seconds without a heartbeat that make a stall; ``heartbeat``: seconds
    between beats and between checks; ``metrics``: where the stall counter lives.

    Resource handling: :meth:`run` starts the thread and stops it (and joins it) when
    cancelled; run it in a nursery that lives as long as what it watches.
    """

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_STALL_THRESHOLD,
        heartbeat: float = DEFAULT_HEARTBEAT,
        metrics: Metrics = METRICS,
    ) -> None:
        if threshold <= 0 or heartbeat <= 0:
            raise ValueError(f"threshold and heartbeat must be > 0 s, not {threshold}, {heartbeat}")
        self.threshold = threshold
        self.heartbeat = min(heartbeat, threshold / 2)
        self.stalls = 0
        """Stalls seen so far."""
        self._metrics = metrics
        self._suppressed = metrics.log_lines_suppressed_total.labels(kind="loop_stall")
        self._window_start = -REPORT_WINDOW
        self._reported = 0
        self._held_back = 0
        self._beat = time.monotonic()
        self._loop_thread = 0
        self._stop = threading.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Beat, and watch from a thread, until cancelled."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._stop.clear()
        thread = threading.Thread(target=self._watch, name="callflow-loop-watchdog", daemon=True)
        thread.start()
        try:
            task_status.started()
            while True:
                self._beat = time.monotonic()
                flush_gc()  # the collector's pauses into their histogram (callflow.observe)
                await trio.sleep(self.heartbeat)
        finally:
            self._stop.set()
            thread.join(1.0)  # it wakes on the event at once

    def _watch(self) -> None:
        """The thread: check the heartbeat every ``heartbeat`` seconds."""
        stalled = False
        interval = self.heartbeat
        woke = time.monotonic()
        while not self._stop.wait(interval):
            now = time.monotonic()
            late = now - woke - interval  # how late this thread itself woke
            woke = now
            held = now - self._beat
            if held <= self.threshold:
                stalled = False
            elif not stalled:
                stalled = True
                try:
                    self._report(held, late)
                except Exception:  # never let the thread die: it is the only witness
                    log.exception("loop watchdog could not report a stall")

    def _report(self, held: float, late: float) -> None:
        self.stalls += 1
        self._metrics.event_loop_stalls_total.inc()
        now = time.monotonic()
        if now - self._window_start >= REPORT_WINDOW:
            if self._held_back:
                log.warning(
                    "… %d more event-loop stalls in %.0f s (not logged one by one)",
                    self._held_back,
                    now - self._window_start,
                )
            self._window_start, self._reported, self._held_back = now, 0, 0
        if self._reported >= MAX_REPORTS:
            self._held_back += 1
            self._suppressed.inc()
            return
        self._reported += 1
        frame = sys._current_frames().get(self._loop_thread)
        flow, call = _whose(frame)
        note = (
            ""
            if late < self.threshold / 2
            else f" (this thread itself woke {late:.2f} s late: the GIL was held or the process "
            "was not scheduled, so the stack may be of what ran next)"
        )
        log.warning(
            "call=%s flow=%s event loop held for %.2f s so far (threshold %.2f s): every call "
            "of this process is frozen until it lets go; flows must not block (run blocking "
            "work with trio.to_thread.run_sync)%s. Stack of the loop thread, innermost first: %s",
            call,
            flow,
            held,
            self.threshold,
            note,
            _one_line_stack(frame),
        )


def _one_line_stack(frame: types.FrameType | None) -> str:
    """The innermost :data:`MAX_STACK_FRAMES` frames from ``frame`` outwards, on one line
    (``file:line in function: source | …``), each at most :data:`MAX_FRAME_CHARS`
    characters, escaped: the whole stays within ``callflow.observe.MAX_LINE_CHARS``."""
    summary = traceback.extract_stack(frame, MAX_STACK_FRAMES)
    parts = []
    for entry in reversed(summary):
        text = f"{entry.filename}:{entry.lineno} in {entry.name}: {(entry.line or '').strip()}"
        if len(text) > MAX_FRAME_CHARS:  # keep the end: the file's name, line and source
            text = "…" + text[-(MAX_FRAME_CHARS - 1) :]
        parts.append(escape(text, MAX_FRAME_CHARS))
    return " | ".join(parts) or "(not found)"


def _whose(frame: types.FrameType | None) -> tuple[str, str]:
    """``(flow path, call id)`` of the nearest Flow and Call among the locals of ``frame``
    and the frames below it (``"-"`` for what is not found)."""
    flow = call = "-"
    while frame is not None and (flow == "-" or call == "-"):
        for value in list(frame.f_locals.values()):
            if call == "-" and isinstance(value, Call):
                call = escape(value.call_id)
            elif flow == "-" and isinstance(value, Flow):
                flow = value.path
        frame = frame.f_back
    return flow, call
