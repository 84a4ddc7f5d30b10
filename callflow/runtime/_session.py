"""Runs one flow for one call: the per-call nursery, the reader, and every way a call ends.

Exception policy (decided once, here): no exception from a call's tasks ever leaves
:func:`run_call`. The reader turns unreadable input into a log line and goes on; the flow's
exceptions are logged once with the call id; the nursery only ever sees cancellation. So one
call's trouble never reaches the server or another call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import trio

from callflow.observe import CALL_CONTEXT, METRICS, FlowMetrics, bind_call, escape, quote
from callflow.protocol import (
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    ProtocolError,
    Start,
    Stop,
    UnknownEvent,
    load_event,
    parse,
    parse_loaded,
)
from callflow.runtime import _warnings
from callflow.runtime._call import Call, CallInfo, RuntimeConfig, StatusEvent
from callflow.runtime._errors import CallEnded
from callflow.runtime._rest import PlivoRest
from callflow.runtime._results import MachineDetection
from callflow.runtime._transport import Transport, TransportClosed, receive_until

if TYPE_CHECKING:
    from callflow._flow import Flow

log = logging.getLogger("callflow.call")


class LiveCalls:
    """The calls running in this process, by Plivo CallUUID.

    Owned by whoever serves calls (the server makes one); not a module global. Status and
    machine-detection webhooks find their live flow through it.
    """

    def __init__(self) -> None:
        self._calls: dict[str, Call] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls.values()))

    def get(self, call_uuid: str) -> Call | None:
        """The live call with this CallUUID, or None."""
        return self._calls.get(call_uuid)

    def add(self, call: Call) -> None:
        """Register a call that has started (replaces a stale entry with the same id)."""
        self._calls[call.call_id] = call

    def discard(self, call: Call) -> None:
        """Forget a call that has ended (no-op if a newer call took the id)."""
        if self._calls.get(call.call_id) is call:
            del self._calls[call.call_id]

    def deliver_status(self, call_uuid: str, params: Mapping[str, str]) -> bool:
        """Hand a status callback (PROTOCOL.md §6) to the live flow of ``call_uuid``.

        Returns False when no call with that id is live here.
        """
        call = self._calls.get(call_uuid)
        if call is None:
            return False
        call._on_status(StatusEvent(params.get("Event", ""), dict(params)))
        return True

    def deliver_machine(self, call_uuid: str, params: Mapping[str, str]) -> bool:
        """Hand Plivo's machine-detection callback (``Machine=true``, seed ``004_…``) to the
        live flow of ``call_uuid``; False when no call with that id is live here."""
        call = self._calls.get(call_uuid)
        if call is None:
            return False
        machine = params.get("Machine", "").lower() == "true"
        if machine:
            call._on_machine(MachineDetection(True, dict(params)))
        return True


async def run_call(
    flow: Flow,
    transport: Transport,
    *,
    answer_params: Mapping[str, str] | None = None,
    live_calls: LiveCalls | None = None,
    config: RuntimeConfig | None = None,
    rest: PlivoRest | None = None,
    answered_at: float | None = None,
) -> None:
    """Run ``flow`` for the call whose stream arrives on ``transport``, until the call ends.

    Waits for Plivo's ``start`` (at most ``config.start_timeout_s``), checks that the stream's
    format is the flow's, then runs the flow and a reader task in one nursery. The call ends
    when the flow returns (its queued audio is given time to play, then the stream is closed,
    so the ``<Hangup/>`` after ``<Stream>`` runs), when the flow raises (logged once with the
    call id), or when Plivo closes the stream (pending operations raise
    :class:`CallEnded`; the flow gets ``config.hangup_grace_s`` to finish its clean-up, then is
    cancelled). Nothing started here outlives the call.

    ``answered_at`` (Unix seconds) is when the answer webhook was answered, for the
    ``callflow_answer_to_start_seconds`` metric. Every log line of the call carries its ids
    and flow path (:func:`callflow.observe.bind_call`); its metrics are labelled by
    ``flow.path``.

    Never raises for anything the call does; closes ``transport`` before returning.
    Cancelling the caller's scope ends the call at once (outcome ``drained``).
    """
    config = config or RuntimeConfig()
    metrics = METRICS.for_flow(flow.path)
    # Until ``start`` names the call, it is the one the answer webhook was for.
    answered_uuid = (answer_params or {}).get("CallUUID")
    answered = _warnings.call_key(answered_uuid)
    context = bind_call(call_id=answered_uuid, flow=flow.path)
    try:
        await _run_started(
            flow, transport, answer_params, live_calls, config, rest, metrics, answered, answered_at
        )
    finally:
        CALL_CONTEXT.reset(context)  # the caller's (a connection task's) context again


async def _run_started(
    flow: Flow,
    transport: Transport,
    answer_params: Mapping[str, str] | None,
    live_calls: LiveCalls | None,
    config: RuntimeConfig,
    rest: PlivoRest | None,
    metrics: FlowMetrics,
    answered: str,
    answered_at: float | None,
) -> None:
    try:
        start = await _wait_for_start(transport, config, flow, answered, metrics)
    except _Refused as refused:
        log.error("%s; closing the stream", refused)
        metrics.outcomes["refused"].inc()
        await transport.aclose(refused.code, refused.reason)
        return
    except TransportClosed:
        log.info("%s stream closed before start (flow %s)", answered, flow.path)
        metrics.outcomes["hung_up"].inc()
        return
    finally:
        _warnings.flush(answered)
    bind_call(call_id=start.call_id, stream_id=start.stream_id, flow=flow.path)
    if answered_at is not None:
        metrics.answer_to_start.observe(max(0.0, time.time() - answered_at))

    info = CallInfo(
        call_id=start.call_id,
        stream_id=start.stream_id,
        account_id=start.account_id,
        tracks=start.tracks,
        format=flow.format,
        extra_headers=start.extra_headers,
        answer_params=dict(answer_params or {}),
    )
    call = Call(info, transport, config, rest, metrics, tts=flow.tts, stt=flow.stt)
    if live_calls is not None:
        live_calls.add(call)
    metrics.calls_active.inc()
    flow_raised = cancelled = False
    log.info(
        "%s stream=%s started flow %s (%s)",
        call._log_key,
        escape(start.stream_id, _warnings.MAX_CALL_ID_CHARS),
        flow.name,
        flow.format.content_type,
    )
    try:
        async with trio.open_nursery() as nursery:
            flow_done = trio.Event()
            nursery.start_soon(
                _read, call, transport, flow_done, nursery.cancel_scope, config, metrics
            )
            flow_raised = await _run_flow(flow, call, metrics)
            flow_done.set()
            if not call.ended:
                await _drain(call, config)
            call._end("flow finished")
            nursery.cancel_scope.cancel()
    except BaseException:  # only cancellation gets here (exception policy): the server's
        cancelled = True  # drain deadline, or whoever runs the call, ended it
        raise
    finally:
        metrics.calls_active.dec()
        metrics.outcomes[_outcome(call, flow_raised=flow_raised, cancelled=cancelled)].inc()
        if live_calls is not None:
            live_calls.discard(call)
        call._end(call._ended.reason if call._ended else "flow finished")
        await call._rest_hangup()
        with trio.CancelScope(shield=True):
            # 1011 (RFC 6455: an unexpected condition) tells the other end the flow raised
            await transport.aclose(*((1011, "flow error") if flow_raised else (1000, "call ended")))
        _warnings.flush(call._log_key)
        log.info(
            "call=%s ended: %s (%d frames in, %d unreadable)",
            call.call_id,
            call._ended.reason if call._ended else "",
            call.frames_received,
            call.protocol_errors,
        )


DRAINED_REASON = "drained"
"""``CallEnded.reason`` of a call that a server's drain deadline ended."""


def _outcome(call: Call, *, flow_raised: bool, cancelled: bool) -> str:
    """The ``outcome`` label of ``callflow_calls_total`` for a call that ran its flow."""
    if flow_raised:
        return "flow_error"
    if cancelled or (call._ended is not None and call._ended.reason == DRAINED_REASON):
        return "drained"
    if call.ended_by_plivo:
        return "hung_up"
    return "completed"


class _Refused(Exception):
    def __init__(self, message: str, code: int = 1008, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or message[:120]


async def _wait_for_start(
    transport: Transport, config: RuntimeConfig, flow: Flow, answered: str, metrics: FlowMetrics
) -> Start:
    """The stream's ``start`` event; anything before it is logged and skipped.

    ``answered`` (``call=<CallUUID>`` of the answer webhook) starts each log line and refusal
    until ``start`` names the call.

    Raises:
        _Refused: no ``start`` within ``config.start_timeout_s`` seconds, or one whose media
            format is unreadable or not the flow's.
        TransportClosed: the stream closed first.
    """
    with trio.move_on_after(config.start_timeout_s):
        while True:
            text = await transport.receive()
            try:
                event = parse(text)
            except ProtocolError as exc:
                metrics.protocol_error("before_start")
                _warnings.UNREADABLE.warning(
                    answered, "flow=%s before start: unreadable message: %s", flow.path, exc
                )
                continue
            if isinstance(event, UnknownEvent):
                metrics.protocol_error("before_start")
                _warnings.UNKNOWN_EVENTS.warning(
                    answered,
                    "flow=%s before start: ignoring unknown event %s",
                    flow.path,
                    quote(event.event, _warnings.MAX_CALL_ID_CHARS),
                )
                continue
            if not isinstance(event, Start):
                metrics.protocol_error("before_start")
                log.warning(
                    "%s flow=%s before start: ignoring %s event",
                    answered,
                    flow.path,
                    type(event).__name__,
                )
                continue
            try:
                fmt = event.format
            except ProtocolError as exc:
                metrics.protocol_error("wrong_format")
                raise _Refused(f"{_warnings.call_key(event.call_id)} {exc}") from None
            if fmt is not flow.format:
                metrics.protocol_error("wrong_format")
                raise _Refused(
                    f"{_warnings.call_key(event.call_id)} field start.mediaFormat: the stream is "
                    f"{fmt.content_type} but flow {flow.path} declares "
                    f"{flow.format.content_type}",
                    code=1003,
                    reason="wrong audio format",
                )
            return event
    metrics.protocol_error("no_start")
    raise _Refused(
        f"{answered} flow={flow.path} no start event within {config.start_timeout_s:.0f} s"
    )


async def _run_flow(flow: Flow, call: Call, metrics: FlowMetrics) -> bool:
    """Run the flow; log its outcome once; True when it raised (other than
    :class:`CallEnded`). Only cancellation escapes."""
    try:
        await flow.handler(call)
    except Exception as exc:
        if _only_call_ended(exc):
            log.info("call=%s flow %s stopped: the call ended", call.call_id, flow.name)
        else:
            log.exception("call=%s flow %s raised; ending this call", call.call_id, flow.name)
            metrics.flow_exception(exc)
            call._end(f"flow raised {type(exc).__name__}")
            return True
    return False


def _only_call_ended(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_call_ended(e) for e in exc.exceptions)
    return isinstance(exc, CallEnded)


async def _drain(call: Call, config: RuntimeConfig) -> None:
    """Give audio the flow queued but did not wait for a chance to play before hanging up."""
    if call.queued_s <= 0:
        return
    with trio.move_on_after(call.queued_s + config.drain_timeout_s):
        with contextlib.suppress(CallEnded):
            await call.checkpoint()


async def _read(
    call: Call,
    transport: Transport,
    flow_done: trio.Event,
    call_scope: trio.CancelScope,
    config: RuntimeConfig,
    metrics: FlowMetrics,
) -> None:
    """The call's one reader: each message is parsed and dispatched inline by
    :func:`_dispatcher`'s function, where the transport reads it (no task or channel hop per
    message; on the server, no task switch at all unless the call must act). This task wakes
    only to send a barge-in's ``clearAudio`` and at the end of the stream. On close, it ends
    the call and gives the flow its grace period."""
    dispatch, stopped = _dispatcher(call, metrics)
    try:
        while not stopped():
            await receive_until(transport, dispatch)
            if call._barge_in_pending:  # a key or speech barged in: clear from here, now
                await call._barge_in_clear()
    except TransportClosed as exc:
        if not call.ended:
            call.ended_by_plivo = True
        call._end(f"stream closed by Plivo (code {exc.code})")
    except Exception:  # a defect in dispatch: this call ends, nothing else is touched
        log.exception("call=%s reader failed; ending this call", call.call_id)
        call._end("reader failed")
    except trio.Cancelled:
        # The call's nursery is being cancelled (by whoever runs the call, e.g. a drain
        # deadline): no event from Plivo will be read again, so end the call now. Otherwise
        # the flow's shielded clean-up (a clear waiting for ``clearedAudio``) would wait out
        # its timeout for an ack nobody can deliver.
        call._end("call cancelled")
        raise
    if not flow_done.is_set():
        with trio.move_on_after(config.hangup_grace_s):
            await flow_done.wait()
    call_scope.cancel()


def _dispatcher(
    call: Call, metrics: FlowMetrics
) -> tuple[Callable[[str], bool], Callable[[], bool]]:
    """``(dispatch, stopped)`` for ``call``'s reader.

    ``dispatch(text)`` parses one message from Plivo and hands it to the call, synchronously
    (PROTOCOL.md §2): media to listeners (a frame nobody listens to is only counted: its
    fields are neither checked nor decoded), keys to the type-ahead buffer,
    ``playedStream`` / ``clearedAudio`` to the ledger's waiters. Unreadable and unknown
    messages are logged with the call id and skipped. It returns True when the
    reader task must act: a barge-in wants its ``clearAudio`` sent, or Plivo sent ``stop``
    (then ``stopped()`` is True). It never raises for anything Plivo sends.
    """
    call_id = call.call_id
    key = call._log_key
    stop_seen = False

    def dispatch(text: str) -> bool:
        nonlocal stop_seen
        try:
            tag, obj = load_event(text)
            if tag == "media":
                call.frames_received += 1
                if not call._wants_media:
                    return False  # nobody listens: counted, not built, not decoded
            event = parse_loaded(tag, obj, text)
        except ProtocolError as exc:
            call.protocol_errors += 1
            metrics.protocol_error("unreadable")
            _warnings.UNREADABLE.warning(key, "unreadable message from Plivo: %s", exc)
            return False
        if type(event) is Media:
            call._on_media(event.payload, event.track)
            return call._barge_in_pending  # speech barged in
        if type(event) is Dtmf:
            call._on_dtmf(event.digit)
            return call._barge_in_pending  # a key barged in
        if type(event) is PlayedStream:
            call._on_played(event.name)
        elif type(event) is ClearedAudio:
            call._on_cleared()
        elif type(event) is Stop:
            log.info("call=%s stop event from Plivo", call_id)
            call.ended_by_plivo = True
            call._end("stream stopped by Plivo")
            stop_seen = True
            return True
        elif type(event) is UnknownEvent:
            metrics.protocol_error("unknown_event")
            _warnings.UNKNOWN_EVENTS.warning(
                key,
                "unknown event %s from Plivo; ignored",
                quote(event.event, _warnings.MAX_CALL_ID_CHARS),
            )
        elif type(event) is Start:
            metrics.protocol_error("second_start")
            log.warning("call=%s second start event; ignored", call_id)
        return False

    return dispatch, lambda: stop_seen
