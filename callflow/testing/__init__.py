"""Test call flows without a phone: a fake Plivo in virtual time, and over real sockets.

::

    async def test_menu(autojump_clock):
        async with FakePlivo(support) as caller:
            await caller.hears(PROMPTS.welcome)
            await caller.press("1")
            await caller.hears(PROMPTS.sales)
            await caller.hung_up()
"""

from callflow.testing._dial import AnswerError, dial, open_plivo_websocket, stream_of
from callflow.testing._fake import Cleared, FakePlivo, Received

__all__ = [
    "AnswerError",
    "Cleared",
    "FakePlivo",
    "Received",
    "dial",
    "open_plivo_websocket",
    "stream_of",
]
