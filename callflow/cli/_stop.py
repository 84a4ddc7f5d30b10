"""How ``callflow serve`` stops: the drain on the first SIGTERM/SIGINT, an immediate exit on
the second, the hard deadline, and the exit status that says how the calls ended.

Exit status of ``callflow serve`` (also in ``docs/operations.md``):

====  =====================================================================================
0     stopped; every call ended on its own during the drain
1     the port cannot be bound
2     bad input (a flow folder that cannot be loaded, a bad option)
3     the drain deadline passed: the server ended the calls still live
      (``CallEnded("drained")``; their ``finally`` blocks ran)
4     a second SIGTERM/SIGINT during the drain: exited at once, live calls cut
5     the hard deadline passed (``--drain-timeout`` + 5 s): something would not end
      (a flow ignoring cancellation), so the process exited with it
====  =====================================================================================
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from callflow.runtime import LiveCalls
from callflow.server import ServerInfo
from callflow.server._drain import HARD_DEADLINE, Drain

log = logging.getLogger("callflow.cli")

EXIT_OK = 0
EXIT_DRAIN_DEADLINE = 3
EXIT_FORCED = 4
EXIT_HARD_DEADLINE = 5

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_now(message: str, status: int) -> None:
    """Write ``message`` as one line on stderr (after the log so far) and end the process with
    ``status`` at once: no clean-up runs, no traceback is printed."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(status)


def exit_status(drain: Drain) -> int:
    """The exit status once the server has drained."""
    return EXIT_OK if drain.clean else EXIT_DRAIN_DEADLINE


def start_hard_deadline(seconds: float, live_calls: LiveCalls) -> threading.Timer:
    """A thread (so a blocked event loop cannot stop it) that exits the process with
    :data:`EXIT_HARD_DEADLINE` after ``seconds`` unless cancelled."""

    def expire() -> None:
        exit_now(
            f"callflow: hard deadline: {len(live_calls)} call(s) still running "
            f"{seconds:.0f} s after the drain began; exiting",
            EXIT_HARD_DEADLINE,
        )

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


async def serve_until_signal(
    run: Callable[..., Awaitable[None]],
    on_started: Callable[[ServerInfo], None],
    *,
    drain: Drain,
    drain_timeout: float,
    live_calls: LiveCalls,
) -> int:
    """Run ``run`` (``serve_flows`` with its options bound; it gets ``drain=`` and
    ``live_calls=``) until SIGINT/SIGTERM has drained it; the exit status.

    The first signal starts the drain and the hard deadline; a second one exits at once.
    """
    timer: threading.Timer | None = None
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(
                _run, run, drain, live_calls, name="callflow server"
            )
            on_started(info)

            async def on_signals() -> None:
                nonlocal timer
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not drain.draining:
                        log.info(
                            "%s: draining; live calls get up to %.0f s to finish "
                            "(a second signal exits at once)",
                            name,
                            drain_timeout,
                        )
                        drain.start()
                        timer = start_hard_deadline(drain_timeout + HARD_DEADLINE, live_calls)
                    else:
                        exit_now(
                            f"callflow: second {name} during the drain: exiting now, "
                            f"{len(live_calls)} live call(s) cut",
                            EXIT_FORCED,
                        )

            nursery.start_soon(on_signals)
            await drain.wait_done()
            nursery.cancel_scope.cancel()
    if timer is not None:
        timer.cancel()
    return exit_status(drain)


async def _run(
    run: Callable[..., Awaitable[None]],
    drain: Drain,
    live_calls: LiveCalls,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    await run(drain=drain, live_calls=live_calls, task_status=task_status)
