"""``callflow new``: the scaffolded project's tests pass with plain ``pytest``; the pytest
plugin is what makes them pass (Trio for async tests, the project on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from callflow import load_flows
from callflow.cli import main

PYTEST = Path(sys.executable).with_name("pytest")


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(PYTEST), "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_new_writes_a_project_whose_tests_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "My IVR"
    assert main(["new", str(project)]) == 0
    out = capsys.readouterr().out
    assert "tests/test_hello.py" in out
    assert "pytest" in out
    assert 'name = "my-ivr"' in (project / "pyproject.toml").read_text()
    assert [f.path for f in load_flows(project / "flows")] == ["/hello"]
    result = _pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_plugin_is_what_runs_them(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert main(["new", str(project)]) == 0
    without = _pytest(project, "-p", "no:callflow")
    assert without.returncode != 0  # no flows on sys.path, async tests not run on Trio
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text + "callflow_trio_mode = false\n")
    off = _pytest(project)
    assert off.returncode != 0
    assert "async def functions are not natively supported" in off.stdout + off.stderr


def test_new_refuses_a_folder_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["new", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("callflow: error: ")
    assert err.count("\n") == 1
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "flows").exists()
