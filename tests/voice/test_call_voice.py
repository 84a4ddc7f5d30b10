"""Text prompts and answers by voice in a call, against FakePlivo in virtual time, with the
offline engine the project installs (Piper and its bundled voice) and the offline recognizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from callflow import Call, Digits, Format, Invalid, NoInput, Speech, flow
from callflow.audio import Audio, encode_count
from callflow.testing import FakePlivo
from callflow.voice import (
    EspeakNg,
    Piper,
    Prompts,
    RenderCache,
    Text,
    TtsChoice,
    synthesis_count,
)

TEXT = Prompts(
    welcome="Welcome to Example Bank.",
    menu="For your balance, press 1 or say balance. For an agent, press 2 or say agent.",
    sorry="Sorry, I did not get that.",
)
CHOICES = {"1": "balance", "2": "agent"}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> RenderCache:
    """One render cache for the module's tests, so each phrase is synthesised once."""
    return RenderCache(tmp_path_factory.mktemp("prompts"))


SPOKEN = ("agent", "balance", "elephant", "balance balance balance balance balance")


@pytest.fixture(scope="module")
def rendered(piper: Piper, shared_cache: RenderCache) -> TtsChoice:
    """The prompts rendered ahead of time, as ``callflow prompts build`` does (a synthesis
    while a call runs would let the autojump clock race ahead), and the caller's phrases."""
    choice = TtsChoice(piper, cache=shared_cache)
    for _, text in TEXT.items():
        choice.renderer().render(text, Format.MULAW_8K)
    for words in SPOKEN:
        choice.renderer().render(Text(words), Format.MULAW_8K)
    return choice


@pytest.fixture
def tts(rendered: TtsChoice) -> TtsChoice:
    return rendered


@pytest.fixture
def fresh_tts(piper: Piper, tmp_path: Path) -> TtsChoice:
    """An engine with an empty render cache of its own."""
    return TtsChoice(piper, cache=RenderCache(tmp_path / "prompts"))


def text_flow(tts: TtsChoice, results: list[Any]) -> Any:
    @flow("/bank", format=Format.MULAW_8K, tts=tts)
    async def bank(call: Call) -> None:
        await call.say(TEXT.welcome)
        results.append(await call.ask(TEXT.menu, CHOICES, invalid=TEXT.sorry, timeout=4))

    return bank


async def test_text_prompts_are_heard_and_the_second_call_costs_no_synthesis_nor_encoding(
    autojump_clock: trio.testing.MockClock, fresh_tts: TtsChoice
) -> None:
    tts = fresh_tts
    results: list[Any] = []
    bank = text_flow(tts, results)
    before = synthesis_count()
    async with FakePlivo(bank) as caller:
        await caller.hung_up()  # NoInput three times: every prompt synthesised, then played
    assert synthesis_count() - before == 2  # welcome, and the menu once though it played 3 times
    assert results == [NoInput()]
    renderer = tts.renderer()
    welcome = renderer.cached(TEXT.welcome, Format.MULAW_8K)
    assert welcome is not None
    assert welcome.duration_s > 1.0

    synthesised, encoded = synthesis_count(), encode_count()
    async with FakePlivo(bank) as caller:
        await caller.hears(welcome)  # the very rendering, from the cache
        await caller.hears(renderer.cached(TEXT.menu, Format.MULAW_8K))
        await caller.hung_up()
    assert synthesis_count() == synthesised  # no synthesis
    assert encode_count() == encoded  # no encoding: the cached payloads were played
    assert results == [NoInput(), NoInput()]


async def test_a_spoken_word_answers_press_or_say(
    autojump_clock: trio.testing.MockClock, tts: TtsChoice
) -> None:
    results: list[Any] = []
    async with FakePlivo(text_flow(tts, results)) as caller:
        await caller.prompt_started()  # welcome
        await caller.prompt_started()  # the menu
        await trio.sleep(1.0)
        await caller.says("agent")  # speech barges in on the menu and answers it
        await caller.hung_up()
    assert results == [Speech("agent")]
    assert results[0].confidence > 0


async def test_a_key_pressed_mid_utterance_wins(
    autojump_clock: trio.testing.MockClock, tts: TtsChoice
) -> None:
    results: list[Any] = []
    async with FakePlivo(text_flow(tts, results)) as caller:
        await caller.prompt_started()
        await caller.prompt_started()
        await trio.sleep(1.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller.says, "balance balance balance balance balance")
            await trio.sleep(1.0)  # well inside the utterance
            await caller.press("2")
        await caller.hung_up()
    assert results == [Digits("2")]


async def test_unrecognised_speech_is_invalid_and_reprompted_as_a_bad_key_is(
    autojump_clock: trio.testing.MockClock, tts: TtsChoice
) -> None:
    results: list[Any] = []
    sorry = tts.renderer().render(TEXT.sorry, Format.MULAW_8K)
    async with FakePlivo(text_flow(tts, results)) as caller:
        await caller.prompt_started()
        await caller.prompt_started()
        await trio.sleep(1.0)
        await caller.says("elephant")
        caller.skip_heard()  # the menu, cut by the speech
        await caller.hears(sorry)  # the invalid re-prompt, counted as for a bad key
        await caller.prompt_started()  # the menu again
        await caller.says("balance")
        await caller.hung_up()
    assert results == [Speech("balance")]


async def test_a_key_outside_the_choices_is_invalid(
    autojump_clock: trio.testing.MockClock, tts: TtsChoice
) -> None:
    results: list[Any] = []

    @flow("/one", format=Format.MULAW_8K, tts=tts)
    async def one(call: Call) -> None:
        results.append(await call.ask("Press or say.", CHOICES, retries=1))

    async with FakePlivo(one) as caller:
        await caller.prompt_started()
        await caller.press("7")
        await caller.hung_up()
    assert results == [Invalid("7")]


async def test_say_takes_text_str_and_still_plays_wav_paths(
    autojump_clock: trio.testing.MockClock, tts: TtsChoice, tmp_path: Path
) -> None:
    from callflow.audio import beep, write_wav

    wav = tmp_path / "beep.wav"
    write_wav(wav, beep(0.5, rate=8000))
    played: list[float] = []

    @flow("/mixed", format=Format.MULAW_8K, tts=tts)
    async def mixed(call: Call) -> None:
        played.append((await call.say(str(wav))).duration_s)  # a .wav str is a file
        played.append((await call.say("Your balance is 42 dollars.")).duration_s)

    async with FakePlivo(mixed) as caller:
        await caller.hears(Audio.from_wav(wav))
        await caller.hung_up()
    assert played[0] == pytest.approx(0.5)
    assert played[1] > 1.0
    spoken = tts.renderer().cached(Text("Your balance is 42 dollars."), Format.MULAW_8K)
    assert spoken is not None


async def test_barge_in_stops_the_synthesis(
    autojump_clock: trio.testing.MockClock, tts: TtsChoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    processes: list[trio.Process] = []
    real = trio.lowlevel.open_process

    async def spy(*args: Any, **kwargs: Any) -> trio.Process:
        process = await real(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(trio.lowlevel, "open_process", spy)
    outcome: list[Any] = []
    long_text = Text("This is a long statement of your account. " * 20, cache=False)

    @flow("/long", format=Format.MULAW_8K, tts=tts)
    async def long(call: Call) -> None:
        outcome.append(await call.say(long_text, barge_in=True))
        outcome.append(processes[0].returncode)

    async with FakePlivo(long) as caller:
        await caller.prompt_started()
        await caller.press("5")
        await caller.hung_up()
    assert outcome[0].interrupted_by == "5"
    assert outcome[1] is not None  # the synthesis program was killed and reaped


async def test_text_synthesised_live_keeps_the_bounded_lead(
    autojump_clock: trio.testing.MockClock, espeak: EspeakNg, tmp_path: Path
) -> None:
    from callflow import RuntimeConfig

    config = RuntimeConfig(max_lead_s=2.0)
    tts = TtsChoice(espeak, cache=RenderCache(tmp_path))  # espeak-ng: a live synthesis is quick

    @flow("/lead", format=Format.MULAW_8K, tts=tts)
    async def lead(call: Call) -> None:
        await call.say(Text("Here is a long statement of your recent account activity. " * 6))

    async with FakePlivo(lead, config=config) as caller:
        await caller.hung_up()
    assert caller.heard_s > 15.0
    # never more queued at Plivo than the lead, plus the one chunk that may cross it
    assert caller.max_queued_s <= 2.0 + 1.52
