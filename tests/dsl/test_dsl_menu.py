"""``menu``: one key among choices (values or sub-flows), counted escalating prompts, and
``NoInput`` / ``Invalid`` after the last attempt. Virtual time."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing
from dslkit import (
    GOODBYE,
    INVALID,
    INVALID_2,
    NO_INPUT,
    NO_INPUT_2,
    PROMPT,
    PROMPT_2,
    PROMPT_3,
    make_flow,
    tone,
)

from callflow import Call, Format, Invalid, NoInput, flow
from callflow.protocol import ClearAudio
from callflow.testing import FakePlivo

SALES = tone(0.5, 900)
SUPPORT = tone(0.5, 950)


async def choose(choices: dict[str, object], keys: str, **kwargs: object) -> tuple[object, float]:
    got: list[tuple[object, float]] = []

    async def body(call: Call) -> None:
        began = trio.current_time()
        got.append((await call.menu(PROMPT, choices, **kwargs), trio.current_time() - began))  # type: ignore[arg-type]

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press(keys)
        await caller.hung_up()
    return got[0]


async def test_a_choice_maps_to_its_value(autojump_clock: trio.testing.MockClock) -> None:
    value, elapsed = await choose({"1": "sales", "2": "support"}, "2")
    assert value == "support"
    assert elapsed == pytest.approx(PROMPT.duration_s)  # one key is the whole input


async def test_letter_choices_match_either_case(autojump_clock: trio.testing.MockClock) -> None:
    value, _ = await choose({"a": "first", "*": "star"}, "A")
    assert value == "first"


async def test_a_choice_may_be_an_async_function_sub_flow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    async def sales(call: Call) -> str:
        seen.append(call.call_id)
        await call.say(SALES)
        return "sold"

    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.menu(PROMPT, {"1": sales, "2": "support"}))
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body), call_id="menu-call") as caller:
        await caller.hears(PROMPT)
        await caller.press("1")
        await caller.hears(SALES)
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert got == ["sold"]
    assert seen == ["menu-call"]


async def test_a_choice_may_be_a_flow(autojump_clock: trio.testing.MockClock) -> None:
    @flow("/support", format=Format.MULAW_8K)
    async def support(call: Call) -> None:
        await call.say(SUPPORT)

    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.menu(PROMPT, {"1": "sales", "2": support}))
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.4)
        await caller.press("2")  # barge-in: the menu prompt stops here
        await caller.wait_for(ClearAudio)
        assert caller.skip_heard() == pytest.approx(0.4, abs=0.001)
        await caller.hears(SUPPORT)
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert got == [None]  # a flow's handler returns None


async def department(call: Call, name: str, prompt: object) -> str:
    await call.say(prompt)  # type: ignore[arg-type]
    return f"{name} done"


@pytest.mark.parametrize(
    "make_choice",
    [
        pytest.param(lambda: lambda call: department(call, "sales", SALES), id="lambda"),
        pytest.param(
            lambda: functools.partial(department, name="sales", prompt=SALES), id="partial"
        ),
    ],
)
async def test_a_callable_returning_an_awaitable_is_a_sub_flow(
    autojump_clock: trio.testing.MockClock, make_choice: object
) -> None:
    got: list[object] = []
    choice = make_choice()  # type: ignore[operator]

    async def body(call: Call) -> None:
        got.append(await call.menu(PROMPT, {"1": choice, "2": "support"}))
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press("1")
        await caller.hears(SALES)
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert got == ["sales done"]


async def test_a_class_is_a_value_not_a_sub_flow(autojump_clock: trio.testing.MockClock) -> None:
    class Sales:
        pass

    value, _ = await choose({"1": Sales, "2": "support"}, "1")
    assert value is Sales


async def test_counted_escalating_prompts(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(
            await call.menu(
                [PROMPT, PROMPT_2, PROMPT_3],
                {"1": "sales", "2": "support"},
                no_input=[NO_INPUT, NO_INPUT_2],
                invalid=[INVALID, INVALID_2],
                retries=3,
                timeout=3.0,
            )
        )

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)  # attempt 1: silence
        began = trio.current_time()
        await caller.hears(NO_INPUT)
        assert trio.current_time() - began == pytest.approx(3.0 + NO_INPUT.duration_s)
        await caller.hears(PROMPT_2)  # attempt 2: a key with no choice
        await caller.press("7")
        await caller.hears(INVALID)  # the first invalid (VoiceXML counts per event)
        await caller.hears(PROMPT_3)  # attempt 3
        await caller.press("1")
        await caller.hung_up()
    assert got == ["sales"]


async def test_no_input_after_the_last_attempt(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        began = trio.current_time()
        got.append(await call.menu(PROMPT, {"1": 1}, retries=2, no_input=NO_INPUT, timeout=4.0))
        got.append(trio.current_time() - began)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.hears(NO_INPUT)
        await caller.hears(PROMPT)
        await caller.hung_up()
    heard = 2 * PROMPT.duration_s + NO_INPUT.duration_s
    assert got == [NoInput(), pytest.approx(heard + 2 * 4.0)]
    assert caller.heard_s == pytest.approx(heard)  # nothing after the last attempt


async def test_invalid_after_the_last_attempt(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.menu(PROMPT, {"1": 1, "2": 2}, retries=2, invalid=INVALID))

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press("9")
        await caller.hears(INVALID)
        await caller.hears(PROMPT)
        await caller.press("#")
        await caller.hung_up()
    assert got == [Invalid("#")]
    assert caller.heard_s == pytest.approx(2 * PROMPT.duration_s + INVALID.duration_s)


@pytest.mark.parametrize("choices", [{}, {"12": 1}, {"x": 1}, {"1": 1, "": 2}])
async def test_choices_must_be_single_dtmf_keys(
    autojump_clock: trio.testing.MockClock, choices: dict[str, object]
) -> None:
    errors: list[BaseException] = []

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match="single DTMF keys") as info:
            await call.menu(PROMPT, choices)
        errors.append(info.value)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert len(errors) == 1
    assert caller.heard_s == 0  # refused before anything played
