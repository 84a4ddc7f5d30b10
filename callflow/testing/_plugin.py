"""callflow's pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
    fake_plivo: a factory, ``async with fake_plivo(flow) as caller: …``, i.e.
        :class:`callflow.testing.FakePlivo`.
"""

from __future__ import annotations

import pytest

from callflow.testing._fake import FakePlivo


@pytest.fixture
def fake_plivo() -> type[FakePlivo]:
    """:class:`FakePlivo`, to open as ``async with fake_plivo(flow) as caller``."""
    return FakePlivo
