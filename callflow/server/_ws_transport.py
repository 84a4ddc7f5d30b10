"""The runtime's transport seam over a ``trio_websocket.WebSocketConnection`` (either side)."""

from __future__ import annotations

import logging

import trio
import trio_websocket

from callflow.runtime import TransportClosed

log = logging.getLogger("callflow.server")

DEFAULT_CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`WebSocketTransport.aclose` waits for the peer's close frame."""


class WebSocketTransport:
    """A :class:`callflow.runtime.Transport` on one WebSocket connection.

    Side-agnostic: the server wraps the connection Plivo opened, and a test's fake Plivo can
    wrap the client end of ``trio_websocket.open_websocket_url`` the same way.

    * ``receive`` returns the next message as text. Plivo sends text frames only
      (PROTOCOL.md §1); a binary frame is decoded as UTF-8 with ``errors="replace"`` and logged
      once per connection.
    * ``trio_websocket.ConnectionClosed`` becomes :class:`~callflow.runtime.TransportClosed`
      with the close code and reason (1000 normal, 1009 message too big, 1006 abnormal…).
    * ``aclose(code, reason)`` sends a close frame and waits up to ``close_timeout`` seconds
      for the peer's; then (or on cancellation) the underlying stream is closed anyway.
      Idempotent.
    """

    def __init__(
        self,
        websocket: trio_websocket.WebSocketConnection,
        *,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._ws = websocket
        self._close_timeout = close_timeout
        self._warned_binary = False

    @property
    def websocket(self) -> trio_websocket.WebSocketConnection:
        """The wrapped connection."""
        return self._ws

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed or closing, else ``None``."""
        reason = self._ws.closed
        return None if reason is None else int(reason.code)

    def _closed(self, exc: trio_websocket.ConnectionClosed) -> TransportClosed:
        reason = exc.reason if exc.reason is not None else self._ws.closed
        if reason is None:
            return TransportClosed(None, "")
        return TransportClosed(int(reason.code), str(reason.reason or ""))

    async def receive(self) -> str:
        """The next text message.

        Raises:
            TransportClosed: the connection is closed (after the messages that arrived before
                the close have been received).
        """
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise self._closed(exc) from None
        if isinstance(message, bytes):
            if not self._warned_binary:
                self._warned_binary = True
                log.warning(
                    "websocket %s: binary frame of %d bytes (Plivo sends text only); "
                    "decoded as UTF-8",
                    self._ws,
                    len(message),
                )
            return message.decode("utf-8", errors="replace")
        return str(message)

    async def send(self, message: str) -> None:
        """Send one text frame.

        Raises:
            TransportClosed: the connection is closed or closing.
        """
        try:
            await self._ws.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` (idempotent); see the class docstring."""
        with trio.move_on_after(self._close_timeout):
            await self._ws.aclose(code, reason or None)
