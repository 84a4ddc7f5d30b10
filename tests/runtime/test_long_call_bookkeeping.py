"""A long call's per-prompt bookkeeping does not grow with the prompts it has played.

Each ``say`` sends a checkpoint after every chunk and waits only for the last; a barge-in
cancels that wait. Whatever a prompt leaves behind stays for the rest of the call, and lives
through the collector's generations (docs/performance.md, "The tail"), so after many prompts,
finished and barged into, the call must hold what one prompt needs and no more.
"""

from __future__ import annotations

import trio
import trio.testing

from callflow import Call, Format, flow
from callflow.audio import beep
from callflow.testing import FakePlivo

PROMPT = beep(2.0, freq_hz=440, rate=8000)  # 16 000 μ-law bytes: two playAudio chunks
PROMPTS = 40


async def test_prompts_played_and_barged_into_leave_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[int, int, int, int, int]] = []
    outcomes: list[bool] = []

    @flow("/ivr", format=Format.MULAW_8K)
    async def ivr(call: Call) -> None:
        for _ in range(PROMPTS):
            playback = await call.say(PROMPT, barge_in=True)
            outcomes.append(playback.completed)
            await call.wait_dtmf()
            seen.append(
                (
                    len(call._mark_waiters),
                    len(call._mark_results),
                    len(call._mark_sent_at),
                    len(call._key_watchers),
                    len(call._frame_watchers),
                )
            )

    async with FakePlivo(ivr) as caller:
        for turn in range(PROMPTS):
            # even turns: a key 0.7 s into the prompt (barge-in); odd: after it played out
            await trio.sleep(0.7 if turn % 2 == 0 else 2.3)
            await caller.press("1")
            await trio.sleep(0.3)
        await caller.hung_up()

    assert len(seen) == PROMPTS
    assert outcomes.count(True) == PROMPTS // 2  # both kinds of ending were exercised
    assert outcomes.count(False) == PROMPTS // 2
    assert set(seen) == {(0, 0, 0, 0, 0)}, seen
