"""Graceful drain: what a server does between SIGTERM and exit, so a load balancer moves
traffic away and no live call is cut unless it outlives the deadline.

The timeline, from the moment the drain starts (:meth:`Drain.start`, or cancellation of
:func:`~callflow.server.serve_flows`):

* at once: readiness is false (``/readyz`` and its alias ``/healthz`` answer 503;
  ``/livez`` stays 200), and every new answer webhook gets the :class:`DrainAnswer`
  (default HTTP 503, so Plivo goes to the number's fallback URL). The listener stays open:
  status callbacks, machine-detection callbacks and stream (re)connections of calls already
  answered are served as usual.
* when the last live call ends, or at ``drain_timeout`` seconds: the drain deadline. Every
  call still live then is ended with ``CallEnded(reason="drained")``: its pending and later
  operations raise it and its ``finally`` blocks run.
* :data:`FLOW_END_GRACE` seconds later, flows still running are cancelled (their sockets
  close with a close handshake).
* :data:`FLOW_END_GRACE` + :data:`CLOSE_GRACE` seconds after the deadline, every call
  socket still open is cut with no handshake (:meth:`FastWebSocketTransport.abort`), so a
  peer that keeps sending but never reads cannot hold a close open.
* :data:`HARD_DEADLINE` seconds after the deadline, ``callflow serve`` exits the process
  whatever still runs (a flow sleeping in a shielded scope cannot be ended otherwise).
"""

from __future__ import annotations

from typing import Literal

import attrs
import trio

from callflow._answer import fallback_xml, redirect_xml
from callflow.runtime._session import DRAINED_REASON

__all__ = [
    "CLOSE_GRACE",
    "DRAINED_REASON",
    "FLOW_END_GRACE",
    "HARD_DEADLINE",
    "Drain",
    "DrainAnswer",
]

FLOW_END_GRACE = 2.0
"""Seconds after the drain deadline that flows ended with ``CallEnded("drained")`` get for
their ``finally`` blocks before they are cancelled."""

CLOSE_GRACE = 2.0
"""Seconds after that cancellation that call sockets get for their close handshake before
they are cut."""

HARD_DEADLINE = 5.0
"""Seconds after the drain deadline by which ``callflow serve`` has exited, every time."""


@attrs.frozen
class DrainAnswer:
    """What a new answer webhook gets while the server drains.

    Attributes:
        kind: ``"unavailable"`` (HTTP 503: Plivo then fetches the number's fallback answer
            URL), ``"speak"`` (XML ``<Speak>text</Speak><Hangup/>``) or ``"redirect"`` (XML
            ``<Redirect>url</Redirect>``: Plivo fetches the call's XML from ``url``).
        text: the sentence spoken (``speak``).
        url: the ``http(s)://`` URL redirected to (``redirect``).
    """

    kind: Literal["unavailable", "speak", "redirect"] = "unavailable"
    text: str = ""
    url: str = ""

    @classmethod
    def parse(cls, spec: str) -> DrainAnswer:
        """A drain answer from its command-line form: ``503``, ``speak:TEXT`` or
        ``redirect:URL``.

        Raises:
            ValueError: any other form, empty text, or a URL that is not ``http(s)://``.
        """
        kind, sep, rest = spec.partition(":")
        if spec == "503":
            return cls()
        if sep and kind == "speak":
            if not rest.strip():
                raise ValueError("speak: needs the text to speak, e.g. speak:Please call later")
            return cls("speak", text=rest.strip())
        if sep and kind == "redirect":
            if not rest.startswith(("http://", "https://")):
                raise ValueError(f"redirect: needs an http(s):// URL, not {rest!r}")
            return cls("redirect", url=rest)
        raise ValueError(f"expected 503, speak:TEXT or redirect:URL, not {spec!r}")

    def response(self) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type) of the answer."""
        if self.kind == "unavailable":
            return 503, b"draining: this server takes no new calls\n", "text/plain; charset=utf-8"
        body = fallback_xml(self.text) if self.kind == "speak" else redirect_xml(self.url)
        return 200, body, "application/xml"


class Drain:
    """The drain state of one server, shared by its parts and whoever stops it.

    Attributes:
        calls_at_start: live calls when the drain started.
        calls_ended_by_server: calls still live at the drain deadline (ended "drained").
        calls_cut: calls whose socket had to be cut, or whose flow had not ended, at the end.
    """

    def __init__(self) -> None:
        self._started = trio.Event()
        self._done = trio.Event()
        self.started_at: float | None = None
        self.calls_at_start = 0
        self.calls_ended_by_server = 0
        self.calls_cut = 0

    @property
    def draining(self) -> bool:
        """Whether the drain has started (readiness is false from then on)."""
        return self._started.is_set()

    @property
    def done(self) -> bool:
        """Whether the server has finished draining (every call ended or was cut)."""
        return self._done.is_set()

    @property
    def clean(self) -> bool:
        """Whether every call ended on its own (none ended by the deadline, none cut)."""
        return self.calls_ended_by_server == 0 and self.calls_cut == 0

    def start(self) -> None:
        """Start the drain (idempotent; safe from any task of the server's trio run)."""
        if not self._started.is_set():
            self.started_at = trio.current_time()
            self._started.set()

    async def wait_started(self) -> None:
        """Wait until :meth:`start` has been called."""
        await self._started.wait()

    async def wait_done(self) -> None:
        """Wait until the server has drained."""
        await self._done.wait()

    def _finish(self) -> None:
        self._done.set()
