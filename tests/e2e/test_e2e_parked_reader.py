"""An idle call on the real server holds no reader task: the read loop dispatches its
messages (media, checkpoint acks, keys) with no task of the call's waiting, and a task is
started only for work that needs one (``callflow.runtime._reader``; docs/performance.md,
"Memory per idle call")."""

from __future__ import annotations

import functools

import pytest
import trio
from e2ekit import AUTH_TOKEN, FLOWS

from callflow import load_flows
from callflow.protocol import ClearAudio
from callflow.server import ServerInfo, serve_flows
from callflow.testing import dial
from flows.support import PROMPTS

pytestmark = pytest.mark.e2e


def all_tasks() -> list[trio.lowlevel.Task]:
    """Every task running now."""
    tasks: list[trio.lowlevel.Task] = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        tasks.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return tasks


def call_tasks() -> list[int]:
    """For each call running its flow: how many tasks its nursery holds besides the flow
    (which runs in the connection's own task, the one that opened the nursery)."""
    counts = []
    for task in all_tasks():
        frames = [frame.f_code.co_name for frame, _ in task.iter_await_frames()]
        if "run_call" in frames:
            counts.append(sum(len(n.child_tasks) for n in task.child_nurseries))
    return counts


async def test_a_call_waiting_for_a_key_has_no_reader_task_and_still_hears_the_key(
    nursery: trio.Nursery,
) -> None:
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows, load_flows(FLOWS), host="127.0.0.1", port=0, auth_token=AUTH_TOKEN
        )
    )
    with trio.fail_after(30):
        async with dial(f"{info.url}/support", auth_token=AUTH_TOKEN) as caller:
            await caller.hears(PROMPTS.welcome)  # media and acks flowed all along
            await trio.sleep(0.3)
            assert call_tasks() == [0]  # one call, and no task in its nursery
            await caller.press("1")  # a barge-in, read and cleared by the read loop
            await caller.wait_for(ClearAudio)
            caller.skip_heard()
            await caller.hears(PROMPTS.sales)
            assert call_tasks() == [0]
            await caller.hang_up()  # the close needs a task: one is started, ends the call
        while call_tasks():  # noqa: ASYNC110 (nothing to wait on from outside the server)
            await trio.sleep(0.05)
