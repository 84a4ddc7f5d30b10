"""The first tutorial's sample outputs are what the commands print: each ```sh block of one
command followed by an output block is run in a project made by ``callflow new`` and its
output compared (times, ports and versions aside)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial-first-ivr.md"
PAIR = re.compile(r"```sh\n([^\n]+)\n(?:cd [^\n]+\n)?```\n\n```(?:xml)?\n(.*?)```", re.S)
BIN = Path(sys.executable).parent


def _samples() -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in PAIR.finditer(TUTORIAL.read_text())]


def _normal(text: str) -> str:
    text = re.sub(r"\b\d+\.\d+s\b", "T", text)  # durations: `2 passed in 0.31s`
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"^callflow \d[\w.+-]*$", "callflow VERSION", text, flags=re.M)
    return text.strip()


def _env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PLIVO_AUTH_TOKEN", "PLIVO_AUTH_ID")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_tutorial_has_sample_outputs() -> None:
    commands = [command for command, _ in _samples()]
    for expected in ("callflow --version", "callflow new hello-ivr", "pytest"):
        assert expected in commands


def test_each_sample_output_is_what_the_command_prints(tmp_path: Path) -> None:
    project = tmp_path / "hello-ivr"
    for command, sample in _samples():
        if command.startswith("callflow dial"):
            continue  # call ids and timings differ each call: tests/e2e/test_e2e_dial.py
        cwd = tmp_path if command.startswith(("callflow new", "callflow --version")) else project
        if command == "callflow serve flows/":
            out = _serve_banner(cwd)
        else:
            out = subprocess.run(
                command.split(),
                cwd=cwd,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
        if command == "pytest":  # the header names this machine; compare the summary
            out, sample = (text.strip().splitlines()[-1].strip("= ") for text in (out, sample))
        assert _normal(out) == _normal(sample), command


def _serve_banner(cwd: Path) -> str:
    with subprocess.Popen(
        ["callflow", "serve", "flows/", "--port", "0"],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as server:
        assert server.stdout is not None
        lines = []
        try:
            for line in server.stdout:
                lines.append(line)
                if line.startswith("listening on "):
                    break
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    if not lines:
        pytest.fail("serve printed nothing")
    return "".join(lines)
