"""The public surface of ``callflow.server``: what ``__init__`` re-exports, and only that."""

from __future__ import annotations

import callflow.server


def test_public_names() -> None:
    assert sorted(callflow.server.__all__) == [
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
    for name in callflow.server.__all__:
        value = getattr(callflow.server, name)
        assert getattr(value, "__module__", "callflow.server").startswith("callflow.server")
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"


def test_server_info_url() -> None:
    assert callflow.server.ServerInfo("127.0.0.1", 8000).url == "http://127.0.0.1:8000"
    assert callflow.server.ServerInfo("::1", 8000).url == "http://[::1]:8000"
