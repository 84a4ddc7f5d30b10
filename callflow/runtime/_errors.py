"""The runtime's exceptions.

::

    CallflowError
    ├── CallEnded          the call is over (the caller hung up, the stream closed, hangup())
    ├── RestError          Plivo's REST API refused a hangup, transfer or outbound call
    └── (ProtocolError, from callflow.protocol, is a ValueError: unreadable wire input)
"""

from __future__ import annotations


class CallflowError(Exception):
    """Base class of callflow's own runtime errors."""


class CallEnded(CallflowError):
    """The call is over, so the operation cannot happen: the hangup error.

    Raised by every pending and later :class:`~callflow.Call` operation once the stream has
    closed (Plivo hung up or dropped the socket) or the flow called ``hangup()``. A flow need not
    catch it: the runtime treats a flow ending with ``CallEnded`` as a normal hangup. Its
    ``finally`` blocks run as usual.

    Attributes:
        call_id: Plivo's CallUUID.
        reason: why the call ended, e.g. ``"stream closed by Plivo (code 1000)"``.
    """

    def __init__(self, call_id: str, reason: str) -> None:
        super().__init__(f"call {call_id} ended: {reason}")
        self.call_id = call_id
        self.reason = reason
