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
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from callflow.observe import (
    CALL_CONTEXT,
    MAX_CALL_ID_CHARS,
    METRICS,
    FlowMetrics,
    bind_call,
    call_label,
    escape,
)
from callflow.protocol import (
    Start,
)
from callflow.runtime import _warnings
from callflow.runtime._call import Call, CallInfo, RuntimeConfig
from callflow.runtime._config import DEFAULT_CONFIG
from callflow.runtime._errors import CallEnded
from callflow.runtime._live import Claim, LiveCalls
from callflow.runtime._reader import Reader
from callflow.runtime._rest import PlivoRest
from callflow.runtime._start import Refused, wait_for_start
from callflow.runtime._sync import Signal
from callflow.runtime._timeouts import PhaseTimeouts
from callflow.runtime._transport import Transport, TransportClosed

__all__ = ["DRAINED_REASON", "LiveCalls", "run_call"]

if TYPE_CHECKING:
    from callflow._flow import Flow

log = logging.getLogger("callflow.call")


async def run_call(
    flow: Flow,
    transport: Transport,
    *,
    answer_params: Mapping[str, str] | None = None,
    live_calls: LiveCalls | None = None,
    config: RuntimeConfig | None = None,
    rest: PlivoRest | None = None,
    answered_at: float | None = None,
    call_uuid: str | None = None,
    timeouts: PhaseTimeouts | None = None,
) -> None:
    """Run ``flow`` for the call whose stream arrives on ``transport``, until the call ends;
    or, for a call already live here, put that call on ``transport`` (a reconnect).

    Waits for Plivo's ``start`` (at most ``config.start_timeout_s``), checks that the stream's
    format is the flow's, then runs the flow and a reader task in one nursery. The call ends
    when the flow returns (its queued audio is given time to play, then the stream is closed,
    so the ``<Hangup/>`` after ``<Stream>`` runs), when the flow raises (logged once with the
    call id), or when Plivo closes the stream (pending operations raise
    :class:`CallEnded`; the flow gets ``config.hangup_grace_s`` to finish its clean-up, then is
    cancelled). A socket *lost* (no close handshake, or a close code in
    :data:`~callflow.runtime.LOST_LINK_CODES`) only detaches the call for
    ``config.reconnect_grace_s`` (docs/reconnect.md). Nothing started here outlives the call.

    With ``call_uuid`` (the call the stream token names) and ``live_calls``, one stream per
    call: ``start.callId`` must be ``call_uuid`` (else the stream is closed with 1008); if
    that call is live here, this stream re-attaches to it (taking over from a socket that
    still looks open) and this returns once the call lets go of it; a stream for a call that
    ended here is refused with 1008; a stream for a call whose first stream still waits for
    ``start`` replaces that one.

    ``timeouts``: what bounds the wait for ``start`` and the call's waits for checkpoint
    acks (the server's :class:`~callflow.runtime._timeouts.PhaseTimeouts`; else
    ``trio.move_on_after`` / ``move_on_at``).
    ``answered_at`` (Unix seconds) is when the answer webhook was answered, for the
    ``callflow_answer_to_start_seconds`` metric. Every log line of the call carries its ids
    and flow path (:func:`callflow.observe.bind_call`); its metrics are labelled by
    ``flow.path``.

    Never raises for anything the call does; closes ``transport`` before returning.
    Cancelling the caller's scope ends the call at once (outcome ``drained``).
    """
    config = config or DEFAULT_CONFIG
    metrics = METRICS.for_flow(flow.path)
    # Until ``start`` names the call, it is the one the stream token or answer webhook was for.
    answered_uuid = call_uuid or (answer_params or {}).get("CallUUID")
    answered = call_label(answered_uuid)
    context = bind_call(call_id=answered_uuid, flow=flow.path)
    try:
        start = await _opening(
            flow, transport, live_calls, config, metrics, answered, call_uuid, timeouts
        )
        if start is None:
            return  # refused, closed, replaced, or a reconnect served
        # The call runs in this frame, not one more nested: a call keeps its task's stack for
        # its whole life (docs/performance.md, "Memory per idle call").
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
        del start  # (what the call keeps of it is in ``info``)
        call = Call(info, transport, config, rest, metrics, tts=flow.tts, stt=flow.stt)
        call._timeouts = timeouts  # (they bound its waits for acks too: _ackbound)
        line = call._line
        if live_calls is not None:
            live_calls.add(call)
        metrics.calls_active.inc()
        flow_raised = cancelled = False
        log.info(
            "%s stream=%s started flow %s (%s)",
            call._log_key,
            escape(info.stream_id, MAX_CALL_ID_CHARS),
            flow.name,
            flow.format.content_type,
        )
        try:
            async with trio.open_nursery() as nursery:
                line.closer = nursery
                flow_done = Signal()
                line.reader = reader = Reader(call, nursery, flow_done, config, metrics)
                reader.start()
                try:
                    try:
                        await flow.handler(call)
                    except Exception as exc:
                        flow_raised = _flow_raised(flow, call, metrics, exc)
                    flow_done.set()
                    if not call.ended:
                        await _drain(call, config)
                    call._end("flow finished")
                finally:
                    reader.stop()
                nursery.cancel_scope.cancel()
        except BaseException:  # only cancellation gets here (exception policy): the server's
            cancelled = True  # drain deadline, or whoever runs the call, ended it
            call._end("call cancelled")  # (the reader's words when its task saw it)
            raise
        finally:
            line.closer = line.reader = None
            metrics.calls_active.dec()
            metrics.outcomes[_outcome(call, flow_raised=flow_raised, cancelled=cancelled)].inc()
            if live_calls is not None:
                live_calls.discard(call)
            await _close(call, transport, flow_raised=flow_raised)
    finally:
        CALL_CONTEXT.reset(context)  # the caller's (a connection task's) context again


async def _opening(
    flow: Flow,
    transport: Transport,
    live_calls: LiveCalls | None,
    config: RuntimeConfig,
    metrics: FlowMetrics,
    answered: str,
    call_uuid: str | None,
    timeouts: PhaseTimeouts | None,
) -> Start | None:
    """The ``start`` of a new call's first stream; ``None`` when there is no call to run
    here: the stream was refused or closed before ``start`` (logged, counted, closed), a
    newer stream replaced it, or it was a reconnect of a call live here (served until the
    call let go of it)."""
    claim: Claim | None = None
    if call_uuid is not None and live_calls is not None:
        live = live_calls.get(call_uuid)
        if live is not None and not live.ended:
            metrics.reconnects.inc()
            await _rejoin(flow, live, transport, config, answered, metrics)
            return None
        if live_calls.has_ended(call_uuid):
            log.warning("%s a stream for a call that has ended; refused with 1008", answered)
            metrics.outcomes["refused"].inc()
            await transport.aclose(1008, "call has ended")
            return None
        claim = live_calls.claim(call_uuid)
    start: Start | None = None
    try:
        with claim.scope if claim is not None else contextlib.nullcontext():
            start = await wait_for_start(
                transport,
                config,
                flow,
                answered,
                metrics,
                claim.call_uuid if claim else None,
                timeouts=timeouts,
            )
    except Refused as refused:
        log.error("%s; closing the stream", refused)
        metrics.outcomes["refused"].inc()
        await transport.aclose(refused.code, refused.reason)
        return None
    except TransportClosed:
        log.info("%s stream closed before start (flow %s)", answered, flow.path)
        metrics.outcomes["hung_up"].inc()
        return None
    finally:
        _warnings.flush(answered)
        if claim is not None and live_calls is not None:
            live_calls.unclaim(claim)
    if start is None:  # a newer stream for the same call replaced this one
        log.info("%s a newer stream for this call replaced this one before start", answered)
        await transport.aclose(1000, "replaced by a newer stream")
    return start


async def _close(call: Call, transport: Transport, *, flow_raised: bool) -> None:
    """The end of a call that ran its flow (``transport``: its first stream): hang up over
    REST if that is due, close the stream (shielded), and log the call's one ``ended``
    line."""
    line = call._line
    call._end(call._ended.reason if call._ended else "flow finished")
    await call._rest_hangup()
    with trio.CancelScope(shield=True):
        # 1011 (RFC 6455: an unexpected condition) tells the other end the flow raised
        code, reason = (1011, "flow error") if flow_raised else (1000, "call ended")
        await line.aclose(code, reason)
        await transport.aclose(code, reason)
    _warnings.flush(call._log_key)
    log.info(
        "call=%s ended: %s (%d frames in, %d unreadable%s)",
        call.call_id,
        call._ended.reason if call._ended else "",
        call.frames_received,
        call.protocol_errors,
        f", {line.reattaches} re-attach(es)" if line.reattaches else "",
    )


async def _rejoin(
    flow: Flow,
    call: Call,
    transport: Transport,
    config: RuntimeConfig,
    answered: str,
    metrics: FlowMetrics,
) -> None:
    """A new stream for ``call``, live here: once its ``start`` checks out, re-attach the
    call to it; return when the call lets go of it (closed by then)."""
    try:
        start = await wait_for_start(transport, config, flow, answered, metrics, call.call_id)
    except Refused as refused:
        log.error("%s; closing the stream", refused)
        await transport.aclose(refused.code, refused.reason)
        return
    except TransportClosed:
        log.info("%s reconnected stream closed before start", answered)
        return
    finally:
        _warnings.flush(answered)
    try:
        call._rebind(start.stream_id)
        attachment = await call._line.attach(transport)
    except CallEnded:
        log.warning("%s a stream for a call that has ended; refused with 1008", answered)
        await transport.aclose(1008, "call has ended")
        return
    metrics.reattaches.inc()
    await attachment.done.wait()


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


def _flow_raised(flow: Flow, call: Call, metrics: FlowMetrics, exc: Exception) -> bool:
    """The flow raised ``exc`` (called in its ``except`` block): log it once; True when it
    is an error (anything but :class:`CallEnded`), which ends the call."""
    if _only_call_ended(exc):
        log.info("call=%s flow %s stopped: the call ended", call.call_id, flow.name)
        return False
    log.exception("call=%s flow %s raised; ending this call", call.call_id, flow.name)
    metrics.flow_exception(exc)
    call._end(f"flow raised {type(exc).__name__}")
    return True


def _only_call_ended(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_call_ended(e) for e in exc.exceptions)
    return isinstance(exc, CallEnded)


async def _drain(call: Call, config: RuntimeConfig) -> None:
    """Give audio the flow queued but did not wait for a chance to play before hanging up
    (on a detached call, once it re-attaches)."""
    if call.queued_s <= 0:
        return
    with contextlib.suppress(CallEnded):
        await call._line.wait_attached()
    with trio.move_on_after(call.queued_s + config.drain_timeout_s):
        with contextlib.suppress(CallEnded):
            await call.checkpoint()
