"""Property: whatever keys a caller types, and however fast, a loop of ``gather`` calls gets
every one of them, in order, as entries; the only keys that never reach an entry are finish
keys: the one that ends an entry, and the one typed right after a full entry (``1234#`` with
``max_digits=4``). Keys come from outside (the caller), so hypothesis picks them. Virtual
time (MockClock with autojump)."""

from __future__ import annotations

import trio
import trio.testing
from dslkit import PROMPT, make_flow
from hypothesis import given, settings
from hypothesis import strategies as st

from callflow import Call, NoInput
from callflow.testing import FakePlivo

KEYS = "0123456789*#"


def entries_of(keys: str, max_digits: int) -> list[str]:
    """The reference: the entries GetDigits with finishOnKey '#' makes of ``keys``, typed
    faster than the digit timeout, plus the rule for a finish key after a full entry."""
    entries: list[str] = []
    current = ""
    after_full = False
    for key in keys:
        if after_full:
            after_full = False
            if key == "#":
                continue  # belongs to the entry before
        if key == "#":
            entries.append(current)
            current = ""
            continue
        current += key
        if len(current) == max_digits:
            entries.append(current)
            current = ""
            after_full = True
    if current:
        entries.append(current)  # ended by the digit timeout
    return entries


def typed(keys: str, gaps: list[float], max_digits: int) -> list[str]:
    got: list[str] = []

    async def body(call: Call) -> None:
        while True:
            result = await call.gather(PROMPT, max_digits=max_digits, timeout=3.0)
            if isinstance(result, NoInput):
                return
            got.append(result.value)

    async def main() -> None:
        async with FakePlivo(make_flow(body)) as caller:
            for key, gap in zip(keys, gaps, strict=False):
                await trio.sleep(gap)
                await caller.press(key)
            await caller.hung_up()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return got


@settings(max_examples=60, deadline=None)
@given(
    keys=st.text(alphabet=KEYS, min_size=1, max_size=12),
    gaps=st.lists(st.sampled_from([0.0, 0.05, 0.4, 1.2, 1.9]), min_size=12, max_size=12),
    max_digits=st.integers(min_value=1, max_value=4),
)
def test_every_key_reaches_an_entry_but_finish_keys(
    keys: str, gaps: list[float], max_digits: int
) -> None:
    assert typed(keys, gaps, max_digits) == entries_of(keys, max_digits)


def test_the_reference_itself() -> None:
    assert entries_of("1234#5", 4) == ["1234", "5"]
    assert entries_of("12#34#", 4) == ["12", "34"]
    assert entries_of("12##", 2) == ["12", ""]  # the second '#' is an empty entry
    assert entries_of("#", 3) == [""]
