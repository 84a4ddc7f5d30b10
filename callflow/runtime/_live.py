"""``LiveCalls``: the calls a process serves, by Plivo CallUUID, and the streams that claim
them before their ``start`` arrives.

One stream per call: a stream for a call that is live here re-attaches to it (or takes it
over); a stream for a call whose first stream is still waiting for ``start`` replaces that
one; a stream for a call that ended here is refused. So one CallUUID never runs two flows in
one process.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping

import trio

from callflow.runtime._call import Call
from callflow.runtime._config import StatusEvent
from callflow.runtime._results import MachineDetection

ENDED_MEMORY_S = 3600.0
"""Seconds a process remembers that a call ended here, so that a stream token for it is
refused (beyond that, the token has expired: ``DEFAULT_TTL`` is 300 s)."""

ENDED_MEMORY_MAX = 100_000
"""The most ended call ids remembered (the oldest are forgotten first)."""


class Claim:
    """A stream for ``call_uuid`` waiting for its ``start``; :attr:`scope` is cancelled when a
    newer stream for the same call replaces it."""

    def __init__(self, call_uuid: str) -> None:
        self.call_uuid = call_uuid
        self.scope = trio.CancelScope()


class LiveCalls:
    """The calls running in this process, by Plivo CallUUID.

    Owned by whoever serves calls (the server makes one); not a module global. Status and
    machine-detection webhooks find their live flow through it; a stream for a live call
    re-attaches to it through it.
    """

    def __init__(self) -> None:
        self._calls: dict[str, Call] = {}
        self._claims: dict[str, Claim] = {}
        self._ended: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls.values()))

    def get(self, call_uuid: str) -> Call | None:
        """The live call with this CallUUID, or None."""
        return self._calls.get(call_uuid)

    def is_live(self, call_uuid: str) -> bool:
        """Whether a call with this CallUUID runs here now (started and not ended)."""
        call = self._calls.get(call_uuid)
        return call is not None and not call.ended

    def has_ended(self, call_uuid: str) -> bool:
        """Whether a call with this CallUUID ended here (remembered for
        :data:`ENDED_MEMORY_S` seconds, at most :data:`ENDED_MEMORY_MAX` of them)."""
        ended_at = self._ended.get(call_uuid)
        return ended_at is not None and time.monotonic() - ended_at < ENDED_MEMORY_S

    def claim(self, call_uuid: str) -> Claim:
        """A new stream for ``call_uuid`` waits for its ``start``: it replaces (cancels) any
        earlier one still waiting."""
        old = self._claims.get(call_uuid)
        if old is not None:
            old.scope.cancel()
        claim = self._claims[call_uuid] = Claim(call_uuid)
        return claim

    def unclaim(self, claim: Claim) -> bool:
        """Drop ``claim``; False if a newer stream had replaced it."""
        if self._claims.get(claim.call_uuid) is not claim:
            return False
        del self._claims[claim.call_uuid]
        return True

    def add(self, call: Call) -> None:
        """Register a call that has started (replaces a stale entry with the same id)."""
        self._calls[call.call_id] = call

    def discard(self, call: Call) -> None:
        """Forget a call that has ended (no-op if a newer call took the id); its id is
        remembered as ended."""
        if self._calls.get(call.call_id) is call:
            del self._calls[call.call_id]
        self._ended[call.call_id] = time.monotonic()
        self._ended.move_to_end(call.call_id)
        while len(self._ended) > ENDED_MEMORY_MAX:
            self._ended.popitem(last=False)

    def deliver_status(self, call_uuid: str, params: Mapping[str, str]) -> bool:
        """Hand a status callback (PROTOCOL.md §6) to the live flow of ``call_uuid``.

        Returns False when no call with that id is live here.
        """
        call = self._calls.get(call_uuid)
        if call is None:
            return False
        call._on_status(StatusEvent(params.get("Event", ""), dict(params)))
        return True

    def deliver_machine(self, call_uuid: str, params: Mapping[str, str]) -> bool:
        """Hand Plivo's machine-detection callback (``Machine=true``, seed ``004_…``) to the
        live flow of ``call_uuid``; False when no call with that id is live here."""
        call = self._calls.get(call_uuid)
        if call is None:
            return False
        machine = params.get("Machine", "").lower() == "true"
        if machine:
            call._on_machine(MachineDetection(True, dict(params)))
        return True
