"""The flow folder loader: helpers beside the flows, subfolders, fresh imports, its errors."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
import trio.testing

from callflow import FlowLoadError, load_flows
from callflow.testing import FakePlivo

FLOW_USING_HELPERS = """
from callflow import Call, Format, flow
from callflow.audio import beep

from .common import GREETING_HZ
from .lib.tones import length_s


@flow("/helped", format=Format.MULAW_8K)
async def helped(call: Call) -> None:
    await call.say(beep(length_s(), GREETING_HZ))
"""


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    flows = tmp_path / "flows"
    _write(flows, "support.py", FLOW_USING_HELPERS)
    _write(flows, "common.py", "GREETING_HZ = 440.0\n")
    _write(flows, "lib/tones.py", "def length_s() -> float:\n    return 0.25\n")
    _write(
        flows,
        "lib/more.py",
        "from callflow import flow\n@flow('/never')\nasync def never(call): pass\n",
    )
    yield flows
    for name in [n for n in sys.modules if n == "flows" or n.startswith("flows.")]:
        del sys.modules[name]


def test_a_flow_imports_helpers_beside_it_and_from_a_subfolder(project: Path) -> None:
    flows = load_flows(project)
    # common.py (no flows) is imported once as a helper; lib/ is not scanned for flows
    assert [f.path for f in flows] == ["/helped"]
    assert flows[0].name == "support.helped"


async def test_the_same_import_lines_work_when_a_test_imports_the_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    monkeypatch.syspath_prepend(str(project.parent))
    module = importlib.import_module("flows.support")
    async with FakePlivo(module.helped) as caller:
        heard = await caller.hears(None)
        assert heard.duration_s == pytest.approx(0.25)
        await caller.hung_up()


def test_an_absolute_import_of_a_helper_fails_with_the_relative_form(tmp_path: Path) -> None:
    _write(tmp_path, "common.py", "X = 1\n")
    _write(tmp_path, "menu.py", "from common import X\n")
    with pytest.raises(FlowLoadError) as error:
        load_flows(tmp_path)
    message = str(error.value)
    assert "menu.py" in message
    assert "from .common import" in message


def test_each_load_imports_the_folder_afresh(tmp_path: Path) -> None:
    body = (
        "from callflow import Format, flow\n"
        "@flow('{path}', format=Format.MULAW_8K)\nasync def f(call):\n    pass\n"
    )
    _write(tmp_path, "a.py", body.format(path="/old"))
    (old,) = load_flows(tmp_path)
    _write(tmp_path, "a.py", body.format(path="/new"))
    (new,) = load_flows(tmp_path)
    assert (old.path, new.path) == ("/old", "/new")
    assert old.handler is not new.handler


def test_no_flows_says_what_was_looked_at(tmp_path: Path) -> None:
    _write(tmp_path, "helpers.py", "X = 1\n")
    _write(tmp_path, "_private.py", "X = 1\n")
    _write(tmp_path, "sub/inner.py", "from callflow import flow\n")
    with pytest.raises(FlowLoadError) as error:
        load_flows(tmp_path)
    message = str(error.value)
    assert "looked at helpers.py" in message
    assert "_private.py" not in message.split("(")[0]
    assert "subfolders" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FlowLoadError, match=r"no \*\.py files"):
        load_flows(empty)
