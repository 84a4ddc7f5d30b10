"""Every Prometheus metric callflow exports, defined once (``docs/operations.md`` explains each).

The bottom layer: imports only ``prometheus_client`` and the standard library, so the runtime
and the server both import it. Names follow Prometheus' conventions (``callflow_`` prefix,
``_total`` on counters, the base unit ``_seconds`` on durations). Labels are bounded sets:
``flow`` is the flow's answer path as the flow declared it (e.g. ``"/ivr"``), never a value
from a request and never the call id; ``outcome``, ``kind``, ``trigger`` and ``reason`` take
the values listed below. Values that do not come from a declared flow use :data:`NO_FLOW`.

Cost: each update is one dict lookup (``labels``) and one locked add; it happens per event
(a call starting, a key, a checkpoint ack), never per media frame.

With several worker processes, prometheus-client's multiprocess mode is used: the supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before any worker imports this module,
every worker writes its values there (memory-mapped files), and whichever worker answers
``GET /metrics`` sums them all (:func:`render`). ``callflow_calls_active`` counts only live
processes (``livesum``); counters keep a dead worker's counts.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: The ``flow`` label for what belongs to no declared flow (e.g. a refused request for an
#: unknown path).
NO_FLOW: Final = "none"

#: The ``outcome`` label values of ``callflow_calls_total``.
OUTCOMES: Final = ("completed", "hung_up", "flow_error", "drained", "refused")

#: The env var prometheus-client reads (at import) to switch to multiprocess mode.
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Buckets, seconds. Barge-in is a scheduler pass or two (target well under 50 ms); first audio
# and checkpoint round trips include Plivo's side; answer -> start is Plivo dialling the
# WebSocket (typically 0.3-2 s).
_FAST_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_START_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_GC_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_ROUND_TRIP_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The metric objects, registered in one :class:`~prometheus_client.CollectorRegistry`.

    An object with a lifetime rather than module globals, so a test can make its own; the
    process-wide one is :data:`METRICS`. Use ``METRICS.calls_total.labels(flow=path,
    outcome="completed").inc()`` and so on; each attribute's docstring-comment gives its
    labels and unit.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        # --- calls -------------------------------------------------------------------------
        #: Calls whose flow is running now (from ``start`` to the end of ``run_call``),
        #: by flow. Detached calls still count.
        self.calls_active = Gauge(
            "callflow_calls_active",
            "Calls whose flow is running now.",
            ["flow"],
            registry=r,
            multiprocess_mode="livesum",
        )
        #: Calls that ended, by flow and outcome: completed (the flow returned), hung_up
        #: (Plivo or the caller ended it), flow_error (the flow raised), drained (cut at the
        #: drain deadline), refused (answer or stream refused before any flow ran).
        self.calls_total = Counter(
            "callflow_calls_total",
            "Calls ended, by outcome.",
            ["flow", "outcome"],
            registry=r,
        )
        #: Exceptions raised by flow code (not CallEnded), by flow and exception class name.
        self.flow_exceptions_total = Counter(
            "callflow_flow_exceptions_total",
            "Exceptions raised by flow code, by exception class.",
            ["flow", "exception"],
            registry=r,
        )
        #: Unreadable or unexpected input from Plivo, by flow and kind (``unreadable``,
        #: ``unknown_event``, ``second_start``, ``before_start``, ``wrong_format``,
        #: ``too_big``, ``call_mismatch``, ``bad_frame``).
        self.protocol_errors_total = Counter(
            "callflow_protocol_errors_total",
            "Protocol errors from Plivo, by kind.",
            ["flow", "kind"],
            registry=r,
        )

        # --- reconnects --------------------------------------------------------------------
        #: Stream connections that arrived for a call already running (Plivo's retries).
        self.reconnects_total = Counter(
            "callflow_reconnects_total",
            "Stream connections for a call already running.",
            ["flow"],
            registry=r,
        )
        #: Reconnects that re-attached to the live flow (including take-overs of a socket
        #: that still looked open).
        self.reattaches_total = Counter(
            "callflow_reattaches_total",
            "Reconnects re-attached to the live flow.",
            ["flow"],
            registry=r,
        )
        #: Calls whose socket dropped and which were detached to wait for a reconnect.
        self.detaches_total = Counter(
            "callflow_detaches_total",
            "Calls detached after their socket dropped.",
            ["flow"],
            registry=r,
        )
        #: Detached calls whose grace window ran out with no reconnect (the call then ended).
        self.detaches_expired_total = Counter(
            "callflow_detaches_expired_total",
            "Detached calls whose grace window ran out.",
            ["flow"],
            registry=r,
        )
        #: The gap between a detach and its re-attach, seconds.
        self.detach_gap_seconds = Histogram(
            "callflow_detach_gap_seconds",
            "Time from a detach to its re-attach.",
            ["flow"],
            registry=r,
            buckets=_START_BUCKETS,
        )

        # --- latencies ---------------------------------------------------------------------
        #: Barge-in latency: a key (``dtmf``) or detected speech (``speech``) that interrupts
        #: a prompt -> its ``clearAudio`` written to the socket, seconds.
        self.barge_in_latency_seconds = Histogram(
            "callflow_barge_in_latency_seconds",
            "Key or speech that interrupts a prompt to clearAudio written.",
            ["flow", "trigger"],
            registry=r,
            buckets=_FAST_BUCKETS,
        )
        #: ``start`` received -> first ``playAudio`` written, seconds.
        self.time_to_first_audio_seconds = Histogram(
            "callflow_time_to_first_audio_seconds",
            "Stream start to the first playAudio written.",
            ["flow"],
            registry=r,
            buckets=_START_BUCKETS,
        )
        #: Answer webhook answered -> the stream's ``start`` received, seconds (from the
        #: stream token's issue time, so it holds whichever process answered).
        self.answer_to_start_seconds = Histogram(
            "callflow_answer_to_start_seconds",
            "Answer webhook answered to the stream's start event.",
            ["flow"],
            registry=r,
            buckets=_START_BUCKETS,
        )
        #: ``checkpoint`` written -> its ``playedStream`` received, seconds (includes playing
        #: the audio queued before it).
        self.checkpoint_round_trip_seconds = Histogram(
            "callflow_checkpoint_round_trip_seconds",
            "checkpoint written to its playedStream received.",
            ["flow"],
            registry=r,
            buckets=_ROUND_TRIP_BUCKETS,
        )
        self._flows: dict[str, FlowMetrics] = {}

        # --- hardening ---------------------------------------------------------------------
        #: Log lines not written because a rate limit held them back, by kind (the log
        #: line's kind, e.g. ``unreadable``, ``unknown_event``, ``bad_signature``).
        self.log_lines_suppressed_total = Counter(
            "callflow_log_lines_suppressed_total",
            "Log lines held back by a rate limit, by kind.",
            ["kind"],
            registry=r,
        )
        #: Signed webhooks refused because their nonce was already seen, by webhook kind
        #: (``answer``, ``status``, ``machine``).
        self.webhook_replays_refused_total = Counter(
            "callflow_webhook_replays_refused_total",
            "Signed webhooks refused as replays.",
            ["kind"],
            registry=r,
        )
        #: Connections refused (503 and closed) because the open-connection cap was reached.
        self.connections_refused_total = Counter(
            "callflow_connections_refused_total",
            "Connections refused at the open-connection cap.",
            registry=r,
        )
        #: Liveness bounds that ran out, by flow and kind: ``pong`` (a stream socket whose
        #: pong did not come in time, given up as lost), ``checkpoint_ack`` (a playback whose
        #: checkpoint ack did not come in time, given up).
        self.liveness_timeouts_total = Counter(
            "callflow_liveness_timeouts_total",
            "Liveness bounds that ran out (no pong, no checkpoint ack), by kind.",
            ["flow", "kind"],
            registry=r,
        )
        #: Times the watchdog saw the event loop held longer than its threshold.
        self.event_loop_stalls_total = Counter(
            "callflow_event_loop_stalls_total",
            "Event loop held longer than the watchdog threshold.",
            registry=r,
        )
        #: Inbound messages dropped unread, by reason (``too_big``, ``rate_limited``,
        #: ``after_stop``, ``queue_full``).
        self.messages_dropped_total = Counter(
            "callflow_messages_dropped_total",
            "Inbound messages dropped, by reason.",
            ["reason"],
            registry=r,
        )

        # --- the process -------------------------------------------------------------------
        #: Pauses of the cycle collector (the event loop waits them out), by generation
        #: ("0", "1", "2"); timed by :func:`callflow.observe.watch_gc`.
        self.gc_pause_seconds = Histogram(
            "callflow_gc_pause_seconds",
            "Cycle collector pauses, by generation.",
            ["generation"],
            registry=r,
            buckets=_GC_BUCKETS,
        )

    def for_flow(self, flow: str) -> FlowMetrics:
        """The per-flow children of the flow-labelled metrics, made once per flow path."""
        bound = self._flows.get(flow)
        if bound is None:
            bound = self._flows[flow] = FlowMetrics(self, flow)
        return bound


class FlowMetrics:
    """The children of :class:`Metrics`' flow-labelled metrics for one flow path, looked up
    once (``labels()`` costs a lock and a dict lookup; these are plain attribute reads).

    A call holds its flow's; the hot paths update these directly.
    """

    def __init__(self, metrics: Metrics, flow: str) -> None:
        self.flow = flow
        m = metrics
        self.calls_active = m.calls_active.labels(flow=flow)
        self.outcomes = {o: m.calls_total.labels(flow=flow, outcome=o) for o in OUTCOMES}
        self.barge_in_dtmf = m.barge_in_latency_seconds.labels(flow=flow, trigger="dtmf")
        self.barge_in_speech = m.barge_in_latency_seconds.labels(flow=flow, trigger="speech")
        self.time_to_first_audio = m.time_to_first_audio_seconds.labels(flow=flow)
        self.answer_to_start = m.answer_to_start_seconds.labels(flow=flow)
        self.checkpoint_round_trip = m.checkpoint_round_trip_seconds.labels(flow=flow)
        self.reconnects = m.reconnects_total.labels(flow=flow)
        self.reattaches = m.reattaches_total.labels(flow=flow)
        self.detaches = m.detaches_total.labels(flow=flow)
        self.detaches_expired = m.detaches_expired_total.labels(flow=flow)
        self.detach_gap = m.detach_gap_seconds.labels(flow=flow)
        self.pong_timeouts = m.liveness_timeouts_total.labels(flow=flow, kind="pong")
        self.ack_timeouts = m.liveness_timeouts_total.labels(flow=flow, kind="checkpoint_ack")
        self._metrics = m

    def protocol_error(self, kind: str) -> None:
        """Count one protocol error of ``kind`` (one of the documented kinds)."""
        self._metrics.protocol_errors_total.labels(flow=self.flow, kind=kind).inc()

    def flow_exception(self, exc: BaseException) -> None:
        """Count one exception the flow raised, by its class name."""
        self._metrics.flow_exceptions_total.labels(
            flow=self.flow, exception=type(exc).__name__
        ).inc()


#: The process-wide metrics; the runtime and the server update these.
METRICS: Final = Metrics()


def multiprocess_dir() -> str | None:
    """The multiprocess folder when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def render(metrics: Metrics = METRICS) -> tuple[bytes, str]:
    """The Prometheus text exposition of every metric, and its Content-Type.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) the values of every worker are
    read from that folder and summed; otherwise ``metrics``' own registry is written.
    """
    from callflow.observe._gcpause import flush_gc  # (it imports this module)

    flush_gc()
    if multiprocess_dir() is not None and metrics is METRICS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the multiprocess folder (its counters stay).

    Call from the supervisor when a worker exits; no-op outside multiprocess mode.
    """
    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
