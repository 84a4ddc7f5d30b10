"""flows/bank.py, called through FakePlivo in virtual time: every branch of the flow."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

from callflow.audio import Audio, beep
from callflow.protocol import ClearAudio
from callflow.testing import FakePlivo
from flows import bank as bank_module
from flows.bank import BANK, DEMO_PIN, PROMPTS, bank

CALL_ID = "CA-bank-test"
RECORD_BEEP = beep(0.25, freq_hz=1000, rate=8000)  # what record() plays before it listens
VOICE = beep(1.0, freq_hz=300, rate=8000, level=0.5)  # either VAD takes it for speech


@pytest.fixture
def voicemail_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CALLFLOW_VOICEMAIL_DIR", str(tmp_path))
    return tmp_path


def saved_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def bank_call() -> FakePlivo:
    return FakePlivo(bank, call_id=CALL_ID, stream_id="MZ-bank-test")


async def test_balance_with_the_right_pin(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("1")
        await caller.hears(BANK.pin)
        await caller.press(DEMO_PIN)
        await caller.hears(BANK.balance)
        await caller.hears(PROMPTS.goodbye)
        assert await caller.hung_up() == 1000
    for item in caller.received:  # every chunk in the stream's own format
        message = json.loads(item.text)
        if message["event"] == "playAudio":
            assert message["media"]["contentType"] == "audio/x-l16"
            assert message["media"]["sampleRate"] == 8000
    # sensitive=True: the PIN is in no log line, not even at DEBUG
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Digits('****')" in logged
    assert not re.search(rf"(?<!\d){DEMO_PIN}(?!\d)", logged)


async def test_a_wrong_pin_then_the_right_one(autojump_clock: trio.testing.MockClock) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("1")
        await caller.hears(BANK.pin)
        await caller.press("9999")
        await caller.hears(BANK.pin_wrong)
        await caller.hears(BANK.pin)
        await caller.press(DEMO_PIN)
        await caller.hears(BANK.balance)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_three_failed_pins_end_the_call(autojump_clock: trio.testing.MockClock) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("1")
        await caller.hears(BANK.pin)
        await caller.press("9999")  # wrong
        await caller.hears(BANK.pin_wrong)
        await caller.hears(BANK.pin)
        await caller.press("12#")  # too short: # ends the input early
        await caller.hears(BANK.pin_wrong)
        await caller.hears(BANK.pin)
        began = trio.current_time()
        await caller.hears(BANK.pin_wrong)  # nothing pressed: after the 5 s timeout
        assert trio.current_time() - began >= 5.0
        await caller.hears(BANK.locked)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_a_key_during_the_welcome_stops_it_and_answers_the_menu(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bank_call() as caller:
        await trio.sleep(0.5)
        pressed = trio.current_time()
        await caller.press("1")
        clear = await caller.wait_for(ClearAudio)
        assert clear.time == pressed  # barge-in takes no virtual time
        assert caller.skip_heard() == pytest.approx(0.5, abs=0.001)
        await caller.hears(BANK.pin)  # type-ahead: the menu prompt is skipped
        await caller.press(DEMO_PIN)
        await caller.hears(BANK.balance)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_speech_during_the_welcome_stops_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bank_call() as caller, trio.open_nursery() as nursery:
        await trio.sleep(0.3)
        spoke = trio.current_time()
        nursery.start_soon(caller.speak, beep(0.5, freq_hz=300, rate=8000, level=0.5))
        clear = await caller.wait_for(ClearAudio)
        # the VAD needs 0.2 s of speech (VadSettings.min_speech_s), on 20 ms frames
        assert 0.2 <= clear.time - spoke <= 0.25
        assert caller.skip_heard() < BANK.welcome.duration_s
        await caller.hears(BANK.menu)
        await caller.press("1")
        await caller.hears(BANK.pin)
        await caller.hang_up()


async def test_menu_no_input_invalid_then_goodbye(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.hears(PROMPTS.noinput)  # 5 s without a key
        await caller.hears(BANK.menu)
        await caller.press("7")
        await caller.hears(PROMPTS.invalid)
        await caller.hears(BANK.menu)
        await caller.hears(PROMPTS.goodbye)  # third attempt without a key: give up
        await caller.hung_up()
    assert not caller.cleared


async def test_voicemail_after_the_beep_is_saved(
    autojump_clock: trio.testing.MockClock, voicemail_dir: Path
) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("2")
        await caller.hears(BANK.message)
        await caller.hears(RECORD_BEEP)
        await trio.sleep(0.5)
        await caller.speak(VOICE)
        await caller.press("#")  # ends the message
        await caller.hears(BANK.saved)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()
    saved = Audio.from_wav(voicemail_dir / f"{CALL_ID}.wav")
    assert saved.sample_rate == 8000
    assert 1.4 <= saved.duration_s <= 1.7  # 0.5 s of quiet, the 1 s voice, the key
    first = int(np.flatnonzero(saved.samples)[0] - np.flatnonzero(VOICE.samples)[0])
    assert np.array_equal(saved.samples[first : first + len(VOICE)], VOICE.samples)


async def test_speech_over_the_instructions_starts_recording_without_a_beep(
    autojump_clock: trio.testing.MockClock, voicemail_dir: Path
) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("2")
        await trio.sleep(1.0)  # the instructions are playing
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller.speak, beep(2.0, freq_hz=300, rate=8000, level=0.5))
            await caller.wait_for(ClearAudio)
            assert caller.skip_heard() < BANK.message.duration_s
        await caller.hears(BANK.saved)  # no beep: recording began at once
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()
    saved = Audio.from_wav(voicemail_dir / f"{CALL_ID}.wav")
    # what followed the barge-in (about 1.8 s of the voice), then 3 s of silence ended it
    assert 4.5 <= saved.duration_s <= 5.0
    assert np.count_nonzero(saved.samples[: int(1.5 * 8000)]) > 0.95 * 1.5 * 8000
    assert not saved.samples[-3 * 8000 :].any()


async def test_a_silent_voicemail_is_not_saved(
    autojump_clock: trio.testing.MockClock, voicemail_dir: Path
) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("2")
        await caller.hears(BANK.message)
        await caller.hears(RECORD_BEEP)
        began = trio.current_time()
        await caller.hears(BANK.nomessage)  # after 3 s of silence
        assert trio.current_time() - began >= 3.0
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()
    assert saved_files(voicemail_dir) == []


async def test_hanging_up_ends_the_message_and_keeps_it(
    autojump_clock: trio.testing.MockClock, voicemail_dir: Path
) -> None:
    async with bank_call() as caller:
        await caller.hears(BANK.welcome)
        await caller.hears(BANK.menu)
        await caller.press("2")
        await caller.hears(BANK.message)
        await caller.hears(RECORD_BEEP)
        await caller.speak(VOICE)
        await caller.hang_up()
    saved = Audio.from_wav(voicemail_dir / f"{CALL_ID}.wav")
    first = int(np.flatnonzero(saved.samples)[0] - np.flatnonzero(VOICE.samples)[0])
    assert np.array_equal(saved.samples[first : first + len(VOICE)], VOICE.samples)


def test_voicemail_folder_defaults_to_the_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLFLOW_VOICEMAIL_DIR", raising=False)
    assert bank_module.voicemail_dir() == Path(tempfile.gettempdir()) / "callflow-voicemail"
    monkeypatch.setenv("CALLFLOW_VOICEMAIL_DIR", "/srv/voicemail")
    assert bank_module.voicemail_dir() == Path("/srv/voicemail")
