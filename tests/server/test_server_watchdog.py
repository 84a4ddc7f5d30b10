"""The loop watchdog: a flow that blocks the event loop is logged once, with its stack.

Real time on purpose (the watchdog's thread measures wall-clock time, which is the point):
the loop is held by ``time.sleep`` for several times the threshold, so the outcome does not
depend on how busy the machine is.
"""

from __future__ import annotations

import logging
import time

import pytest
import trio
from serverkit import StartServer, plivo_socket, sent_dtmf, start_message

from callflow import Call, Format, flow
from callflow.observe import MAX_LINE_CHARS, METRICS, Metrics
from callflow.server._watchdog import MAX_REPORTS, LoopWatchdog

WATCHDOG = "callflow.server.watchdog"


def _stalls(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == WATCHDOG]


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # the blocking call under test (sync: ruff's ASYNC251 does not apply)


async def test_one_line_per_stall_with_the_stack_and_a_count(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    watchdog = LoopWatchdog(threshold=0.1, heartbeat=0.02, metrics=metrics)
    await nursery.start(watchdog.run)
    _hold_the_loop(0.6)  # six thresholds: checked about 25 times while held
    await trio.sleep(0.2)
    _hold_the_loop(0.4)
    await trio.sleep(0.2)
    records = _stalls(caplog)
    assert len(records) == 2, [r.getMessage()[:200] for r in records]
    assert watchdog.stalls == 2
    assert metrics.registry.get_sample_value("callflow_event_loop_stalls_total") == 2
    for record in records:
        text = record.getMessage()
        assert record.levelno == logging.WARNING
        assert "in _hold_the_loop" in text
        assert "time.sleep(seconds)" in text
        assert "trio.to_thread.run_sync" in text
        assert text.startswith("call=- flow=- event loop held for ")  # no call on this stack
        assert "\n" not in text


async def test_a_loop_that_stalls_again_and_again_writes_a_bounded_log(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    watchdog = LoopWatchdog(threshold=0.05, heartbeat=0.01, metrics=metrics)
    await nursery.start(watchdog.run)
    for _ in range(MAX_REPORTS + 4):
        _hold_the_loop(0.2)  # four thresholds each: every hold is a stall of its own
        await trio.sleep(0.05)
    assert watchdog.stalls == MAX_REPORTS + 4
    assert metrics.registry.get_sample_value("callflow_event_loop_stalls_total") == MAX_REPORTS + 4
    assert len(_stalls(caplog)) == MAX_REPORTS
    suppressed = metrics.registry.get_sample_value(
        "callflow_log_lines_suppressed_total", {"kind": "loop_stall"}
    )
    assert suppressed == 4


async def test_a_loop_that_keeps_running_is_not_reported(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    watchdog = LoopWatchdog(threshold=0.5, heartbeat=0.02, metrics=metrics)
    await nursery.start(watchdog.run)
    for _ in range(20):
        _hold_the_loop(0.01)  # short holds, each far under the threshold
        await trio.sleep(0.02)
    assert _stalls(caplog) == []
    assert metrics.registry.get_sample_value("callflow_event_loop_stalls_total") == 0


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        LoopWatchdog(threshold=0)


@flow("/blocking", format=Format.MULAW_8K)
async def blocking(call: Call) -> None:
    """Holds the event loop for two seconds (what a flow must never do), then sends ``1``."""
    time.sleep(2)  # noqa: ASYNC251 - the mistake under test
    await call.send_dtmf("1")
    await call.wait_dtmf()


@pytest.mark.e2e
async def test_a_flow_that_sleeps_2_s_is_logged_once_with_its_stack(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    before = METRICS.registry.get_sample_value("callflow_event_loop_stalls_total") or 0.0
    info = await start_server(flows=[blocking])  # the default threshold (0.5 s)
    async with plivo_socket(f"ws://127.0.0.1:{info.port}/blocking/stream") as ws:
        await ws.send_message(start_message("call-sleepy"))
        with trio.fail_after(10):
            assert sent_dtmf(await ws.get_message()) == "1"
    records = _stalls(caplog)
    assert len(records) == 1, [r.getMessage()[:200] for r in records]
    text = records[0].getMessage()
    assert text.startswith("call=call-sleepy flow=/blocking event loop held for ")
    assert "in blocking" in text
    assert "time.sleep(2)" in text
    assert "\n" not in text  # one line, however deep the stack
    assert len(text) <= MAX_LINE_CHARS
    after = METRICS.registry.get_sample_value("callflow_event_loop_stalls_total")
    assert after == before + 1
