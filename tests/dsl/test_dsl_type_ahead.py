"""Keys and prompts: what happens to keys pressed during a prompt that cannot be interrupted
(kept or discarded, per call), ``flush``, one type-ahead rule for every barge-in prompt, and
``gather``'s ``barge_in`` taking ``say``'s triggers. Virtual time (autojump clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from dslkit import (
    GOODBYE,
    LONG,
    PROMPT,
    PROMPT_2,
    WELCOME,
    make_flow,
    voice,
)

from callflow import Call, Digits, NoInput, Playback, RuntimeConfig
from callflow.protocol import PlayAudio
from callflow.testing import FakePlivo

# -- keys during a prompt that cannot be interrupted ------------------------------------------


async def test_keys_during_an_uninterruptible_prompt_are_kept_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(call.uninterruptible_keys)
        await call.say(WELCOME)
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("12")
        await caller.hears(WELCOME)
        await caller.hung_up()
    assert got == ["keep", "12"]


async def test_discard_drops_the_keys_pressed_during_an_uninterruptible_prompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As VoiceXML with ``bargein="false"``: the caller's keys during a prompt that does not
    listen are not heard, so the next menu's prompt plays instead of being skipped."""
    got: list[object] = []

    async def body(call: Call) -> None:
        call.uninterruptible_keys = "discard"
        await call.say(WELCOME)
        got.append(call.pending_dtmf())
        got.append(await call.menu(PROMPT, {"1": "sales", "2": "support"}))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("1")
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)  # not skipped
        await caller.press("2")
        await caller.hung_up()
    assert got == ["", "support"]


async def test_discard_is_the_runtime_config_default_for_every_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(call.uninterruptible_keys)
        got.append(await call.gather(PROMPT, barge_in=False, timeout=2.0))

    config = RuntimeConfig(uninterruptible_keys="discard")
    async with FakePlivo(make_flow(body), config=config) as caller:
        await trio.sleep(0.5)
        await caller.press("4#")  # during the prompt: dropped
        await caller.hears(PROMPT)
        await caller.hung_up()
    assert got == ["discard", NoInput()]


async def test_discard_keeps_the_keys_that_interrupt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only a prompt no key can stop drops keys; a barge-in key is kept for the next input."""
    got: list[object] = []

    async def body(call: Call) -> None:
        call.uninterruptible_keys = "discard"
        got.append(await call.say(LONG, barge_in=True))
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.press("5")
        await caller.hung_up()
    assert got[1] == "5"


async def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="uninterruptible_keys"):
        RuntimeConfig(uninterruptible_keys="drop")  # type: ignore[arg-type]


async def test_flush_starts_the_gather_from_an_empty_buffer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)
        got.append(await call.gather(PROMPT, flush=True))
        await call.say(GOODBYE)
        got.append(await call.menu(PROMPT_2, {"1": "one", "2": "two"}, flush=True))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("99#")  # typed ahead during WELCOME: flushed
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)  # played, not skipped
        await caller.press("1#")
        await trio.sleep(0.1)
        await caller.press("1")  # typed ahead during GOODBYE: flushed too
        await caller.hears(GOODBYE)
        await caller.hears(PROMPT_2)
        await caller.press("2")
        await caller.hung_up()
    assert got == [Digits("1"), "two"]


# -- one type-ahead rule -----------------------------------------------------------------------


async def test_a_pending_key_interrupts_a_barge_in_say_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key that lands between two prompts answers the second at once: it is not played."""
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.say(PROMPT, barge_in=True))
        await trio.sleep(0.5)  # the caller presses now, between the prompts
        got.append(await call.say(LONG, barge_in=True))
        got.append(await call.wait_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await trio.sleep(0.2)
        await caller.press("3")
        await caller.hung_up()
    assert got == [
        Playback(True, PROMPT.duration_s, PROMPT.duration_s),
        Playback(False, LONG.duration_s, 0.0, "3"),
        "3",
    ]
    sent = sum(1 for r in caller.received if isinstance(r.command, PlayAudio))
    assert sent == 1  # PROMPT's one chunk; nothing of LONG
    assert not caller.cleared  # nothing queued, nothing to clear


async def test_the_same_rule_for_gather_say_and_menu_prompts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)  # the caller types ahead during it
        got.append(await call.say(LONG, barge_in="12"))
        got.append(await call.gather(PROMPT, max_digits=1))
        got.append(await call.menu(PROMPT_2, {"2": "two"}))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("12")
        await caller.hears(WELCOME)
        await caller.hung_up()
    assert got == [Playback(False, LONG.duration_s, 0.0, "1"), Digits("1"), "two"]
    assert caller.heard_s == pytest.approx(WELCOME.duration_s)


async def test_a_pending_key_that_is_not_a_barge_in_key_lets_the_prompt_play(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)
        got.append(await call.say(PROMPT, barge_in="*"))
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("5")
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)
        await caller.hung_up()
    assert got == [Playback(True, PROMPT.duration_s, PROMPT.duration_s), "5"]


# -- gather's barge_in takes say's triggers ---------------------------------------------------


async def test_gather_prompt_stopped_by_speech(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(LONG, barge_in="speech", max_digits=1))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.speak(voice(0.5))  # stops the prompt
        await caller.press("4")
        await caller.hung_up()
    assert got == [Digits("4")]
    assert len(caller.cleared) == 1
    assert caller.heard_s < 1.5


async def test_gather_prompt_stopped_only_by_its_keys(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``barge_in="*"``: a ``5`` during the prompt does not stop it but is typed ahead and
    counts; the ``*`` stops it."""
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(LONG, barge_in="*", max_digits=2, valid_digits="5*"))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.press("5")
        await trio.sleep(1.0)
        assert not caller.cleared
        await caller.press("*")
        await caller.hung_up()
    assert got == [Digits("5*")]
    assert caller.cleared[0].time == pytest.approx(2.0)


async def test_gather_barge_in_with_a_bad_key_is_refused_before_anything_plays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match="barge-in keys"):
            await call.gather(PROMPT, barge_in="1x")
        with pytest.raises(ValueError, match="finish_timeout"):
            await call.gather(PROMPT, finish_timeout=-1)
        errors.append(ValueError())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert len(errors) == 1
    assert caller.heard_s == 0


async def test_discard_still_lets_a_finish_key_end_a_recording_during_its_beep(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The beep is a prompt no key can stop, but ``record`` watches its finish keys from the
    beep on: with ``"discard"`` that key still ends the recording (and nothing is left)."""
    got: list[object] = []

    async def body(call: Call) -> None:
        call.uninterruptible_keys = "discard"
        rec = await call.record(silence_s=5.0)
        got.extend([rec.reason, rec.key, call.pending_dtmf()])

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.1)  # during the 0.25 s beep
        await caller.press("#")
        await caller.hung_up()
    assert got == ["key", "#", ""]


async def test_setting_an_unknown_policy_on_a_call_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match="'keep' or 'discard'"):
            call.uninterruptible_keys = "ignore"  # type: ignore[assignment]
        got.append(call.uninterruptible_keys)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert got == ["keep"]
