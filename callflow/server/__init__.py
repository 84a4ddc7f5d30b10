"""The HTTP + WebSocket front: answer webhook, stream WebSocket, status callbacks, health.

One port serves everything (:func:`serve_flows`); Plivo's request signatures
(:func:`validate_signature_v3`, PROTOCOL.md §7) and callflow's own stream token
(:func:`make_stream_token`) guard it; :class:`WebSocketTransport` is the runtime's transport
over a WebSocket, on either side.
"""

from callflow.server._app import (
    MAX_MESSAGE_SIZE,
    ServerInfo,
    check_public_url,
    serve_flows,
)
from callflow.server._signature import signature_v3, string_to_sign, validate_signature_v3
from callflow.server._token import (
    ESSENTIAL_PARAMS,
    StreamToken,
    StreamTokenError,
    make_stream_token,
    verify_stream_token,
)
from callflow.server._ws_transport import WebSocketTransport

__all__ = [
    "ESSENTIAL_PARAMS",
    "MAX_MESSAGE_SIZE",
    "ServerInfo",
    "StreamToken",
    "StreamTokenError",
    "WebSocketTransport",
    "check_public_url",
    "make_stream_token",
    "serve_flows",
    "signature_v3",
    "string_to_sign",
    "validate_signature_v3",
    "verify_stream_token",
]
