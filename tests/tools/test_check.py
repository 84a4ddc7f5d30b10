"""``callflow check``: clean on the bundled flows; each seeded defect found at its line."""

# ruff: noqa: E501  (the seeded source keeps each defect and its expectation on one line)

from __future__ import annotations

import re
import wave
from pathlib import Path
from textwrap import dedent

import numpy as np
import pytest

from callflow.audio import beep, write_wav
from callflow.cli import main
from callflow.tools import check_folder
from callflow.tools._check import wav_header

ROOT = Path(__file__).resolve().parents[2]

# Each line ending in `# expect: CODE[, CODE]` must give those findings, and no other line any.
DEFECTS = """
from callflow import Call, Digits, Format, NoInput, flow
from callflow.audio import Audio

PROMPTS = Audio.folder(__file__, "prompts")
MISSING = Audio.folder(__file__, "nowhere")  # expect: missing-prompt


@flow("/one", format=Format.MULAW_8K)
async def one(call: Call) -> None:
    await call.say(PROMPTS.hello)
    await call.say(PROMPTS.helo)  # expect: missing-prompt
    await call.say(PROMPTS.wide)  # expect: lossy-prompt
    await call.menu(PROMPTS.hello, {"1": "a", "12": "b"}, no_input=PROMPTS.hello)  # expect: invalid-path, menu-key
    choice = await call.menu(PROMPTS.hello, {"1": "a", "#": "b"})  # expect: no-input-path, invalid-path
    print(choice)


@flow("/two", format=Format.MULAW_8K)
async def two(call: Call) -> None:
    pin = await call.gather(PROMPTS.hello, max_digits=4, no_input=PROMPTS.hello)  # expect: sensitive
    if isinstance(pin, Digits | NoInput):
        return
    await call.gather(PROMPTS.hello, max_digits=4, sensitive=True)  # handled: Digits above


async def ask_card_number(call: Call) -> None:
    await call.gather(PROMPTS.hello, max_digits=16, invalid=PROMPTS.hello, no_input=PROMPTS.hello)  # expect: sensitive
    await call.say("<speak>unclosed <break time='1s'>")  # expect: text-prompt
"""

OTHER = """
from callflow import Call, Format, flow


@flow("/one", format=Format.MULAW_8K)  # expect: duplicate-path
async def again(call: Call) -> None:
    pass
"""


@pytest.fixture
def defects(tmp_path: Path) -> Path:
    (tmp_path / "a_defects.py").write_text(dedent(DEFECTS))
    (tmp_path / "b_other.py").write_text(dedent(OTHER))
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    write_wav(prompts / "hello.wav", beep(0.2, rate=8000))
    # 16 kHz stereo: an 8 kHz call loses its upper band and one channel
    with wave.open(str(prompts / "wide.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(3200, dtype="<i2").tobytes())
    return tmp_path


def _expected(folder: Path) -> set[tuple[str, int, str]]:
    out = set()
    for file in folder.glob("*.py"):
        for number, line in enumerate(file.read_text().splitlines(), 1):
            match = re.search(r"# expect: ([\w, -]+)$", line)
            if match:
                out |= {(file.name, number, c.strip()) for c in match.group(1).split(",")}
    return out


def test_the_bundled_flows_are_clean() -> None:
    assert check_folder(ROOT / "flows") == []


def test_the_scaffolded_project_is_clean(tmp_path: Path) -> None:
    assert main(["new", str(tmp_path / "p")]) == 0
    assert check_folder(tmp_path / "p" / "flows") == []


def test_each_seeded_defect_is_found_at_its_line(defects: Path) -> None:
    found = {(f.file.name, f.line, f.code) for f in check_folder(defects)}
    # text-prompt: the SSML is not well-formed whatever engines are installed
    assert found == _expected(defects)


def test_the_messages_say_what_is_wrong(defects: Path) -> None:
    by_code = {f.code: f.message for f in check_folder(defects)}
    assert "16000 Hz to 8000 Hz" in by_code["lossy-prompt"]
    assert "2 channels mixed down" in by_code["lossy-prompt"]
    missing = [f.message for f in check_folder(defects) if f.code == "missing-prompt"]
    assert any("PROMPTS.helo" in m and "(there: hello, wide)" in m for m in missing)
    assert any("nowhere" in m for m in missing)
    assert "sensitive=True" in by_code["sensitive"]
    assert "'12'" in by_code["menu-key"]
    assert "a_defects.py" in by_code["duplicate-path"]


def test_the_command_exits_1_with_file_and_line(
    defects: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(defects)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert re.match(rf"{re.escape(str(defects))}/a_defects\.py:\d+: \[missing-prompt\] ", out[0])
    assert out[-1] == f"callflow check: {len(_expected(defects))} finding(s) in {defects}"
    assert main(["check", str(ROOT / "flows")]) == 0
    assert main(["check", str(defects / "missing")]) == 2


def test_wav_header_reads_extensible_and_mulaw_files(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", beep(0.1, rate=16000))
    assert wav_header(tmp_path / "a.wav") == (1, 1, 16000, 16)
    (tmp_path / "b.wav").write_bytes(b"not a wav")
    assert wav_header(tmp_path / "b.wav") is None
    mulaw = ROOT / "callflow" / "scaffold" / "template" / "flows" / "prompts" / "welcome.wav"
    assert wav_header(mulaw) == (7, 1, 8000, 8)
