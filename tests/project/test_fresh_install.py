"""The README's and the first tutorial's path, in a folder outside the repository: install
callflow from this checkout into a fresh virtualenv (dependencies from PyPI), scaffold a
project, run its tests, serve it, dial it with keys, stop the server."""

from __future__ import annotations

import os
import signal
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.install


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _env() -> dict[str, str]:
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PLIVO_AUTH_TOKEN", "PLIVO_AUTH_ID")
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_install_scaffold_test_serve_dial(tmp_path: Path) -> None:
    env_dir = tmp_path / ".venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    # README: pip install "/path/to/callflow-checkout[pytest]"
    _run(bin_dir / "pip", "install", "-q", f"{ROOT}[pytest]", cwd=tmp_path, timeout=600)
    assert _run(bin_dir / "callflow", "--version", cwd=tmp_path).startswith("callflow ")
    _run(bin_dir / "callflow", "new", "hello-ivr", cwd=tmp_path)
    project = tmp_path / "hello-ivr"
    assert "2 passed" in _run(bin_dir / "pytest", cwd=project)

    log = tmp_path / "serve.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [bin_dir / "callflow", "serve", "flows/", "--port", "0"],
            cwd=project,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as server,
    ):
        try:
            assert server.stdout is not None
            url = ""
            for line in server.stdout:
                if line.startswith("listening on "):
                    url = line.split()[-1]
                    break
            assert url, f"the server printed no 'listening on' line: {log.read_text()}"
            out = _run(
                bin_dir / "callflow",
                "dial",
                f"{url}/hello",
                "--keys",
                "1",
                "--out",
                "heard.wav",
                cwd=project,
            )
            assert "call ended" in out
            assert (project / "heard.wav").stat().st_size > 40_000  # seconds of 8 kHz audio
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
    assert code == 0, log.read_text()
