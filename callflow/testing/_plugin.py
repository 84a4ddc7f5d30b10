"""callflow's pytest plugin (registered through the ``pytest11`` entry point).

It makes a new project's flow tests run with plain ``pytest``, no settings needed:

* **Trio for async tests.** Every ``async def`` test that no other async plugin claims (no
  ``trio``, ``anyio`` or ``asyncio`` mark) is marked ``@pytest.mark.trio``, as pytest-trio's
  ``trio_mode = true`` would do (async fixtures of those tests run on Trio too). Opt out with
  the ini setting ``callflow_trio_mode = false``. Needs pytest-trio (the ``pytest`` extra:
  ``pip install 'callflow-plivo[pytest]'``).
* **The project on the import path.** When pytest's rootdir has a ``flows/`` folder, the
  rootdir is put first on ``sys.path``, so tests import flows as ``from flows.support import
  support`` (helpers imported with ``from .common import …`` resolve inside that package).

A test that wants virtual time asks for pytest-trio's ``autojump_clock`` fixture: sleeps and
timeouts then take no real time while every task is waiting (FakePlivo's 20 ms frames, a 5 s
``gather`` timeout).

Fixtures:
    fake_plivo: a factory, ``async with fake_plivo(flow) as caller: …``, i.e.
        :class:`callflow.testing.FakePlivo`.
"""

from __future__ import annotations

import inspect
import sys

import pytest

from callflow.testing._fake import FakePlivo

_ASYNC_MARKS = ("trio", "anyio", "asyncio")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "callflow_trio_mode",
        "run async tests that no other plugin claims under Trio (callflow's plugin)",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    root = config.rootpath
    if (root / "flows").is_dir() and str(root) not in sys.path:
        sys.path.insert(0, str(root))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getini("callflow_trio_mode") or config.getini("trio_mode"):
        return  # off, or pytest-trio's own trio mode marks them already
    if not config.pluginmanager.hasplugin("trio"):
        return  # pytest-trio is not installed: leave async tests to whoever claims them
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        test = getattr(item.obj, "hypothesis", None)
        func = test.inner_test if test is not None else item.obj
        if not inspect.iscoroutinefunction(func):
            continue
        if any(item.get_closest_marker(name) is not None for name in _ASYNC_MARKS):
            continue
        item.add_marker(pytest.mark.trio)


@pytest.fixture
def fake_plivo() -> type[FakePlivo]:
    """:class:`FakePlivo`, to open as ``async with fake_plivo(flow) as caller``."""
    return FakePlivo
