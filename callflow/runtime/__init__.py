"""The per-call runtime: :class:`Call`, the session that runs a flow, and the transport seam."""

from callflow.runtime._transport import (
    MemoryTransport,
    Transport,
    TransportClosed,
    memory_transport_pair,
)

__all__ = ["MemoryTransport", "Transport", "TransportClosed", "memory_transport_pair"]
