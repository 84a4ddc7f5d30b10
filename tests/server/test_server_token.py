"""The stream token in the ``<Stream>`` URL: carries the answer params, signed, short-lived."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from callflow.server import StreamTokenError, make_stream_token, verify_stream_token
from callflow.server._token import essential_params

TOKEN = "MY_AUTH_TOKEN_0123456789abcdef"
PATH = "/support/stream"
PARAMS = {"CallUUID": "c-1", "From": "111", "To": "222", "Direction": "inbound"}
NOW = 1_800_000_000.0


def test_round_trip_carries_the_answer_params() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, ttl=300, now=NOW)
    verified = verify_stream_token(token, path=PATH, auth_token=TOKEN, now=NOW + 299)
    assert verified.call_uuid == "c-1"
    assert verified.params == PARAMS
    assert verified.path == PATH
    assert verified.expires_at == NOW + 300
    assert verified.signed


def test_token_is_url_safe() -> None:
    token = make_stream_token(PATH, {"CallUUID": "ü/+?&= "}, auth_token=TOKEN, now=NOW)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_expired() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, ttl=300, now=NOW)
    with pytest.raises(StreamTokenError, match="expired") as info:
        verify_stream_token(token, path=PATH, auth_token=TOKEN, now=NOW + 301)
    assert info.value.reason.startswith("expired")
    assert info.value.call_uuid == "c-1"  # signed, so the refusal can name the call


def test_the_expiry_bounds_only_the_first_connection_of_a_live_call() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, ttl=300, now=NOW)
    ten_minutes_in = NOW + 600
    verified = verify_stream_token(
        token, path=PATH, auth_token=TOKEN, now=ten_minutes_in, live={"c-1"}.__contains__
    )
    assert verified.call_uuid == "c-1"
    with pytest.raises(StreamTokenError, match="expired"):  # that call is not live here
        verify_stream_token(
            token, path=PATH, auth_token=TOKEN, now=ten_minutes_in, live={"c-2"}.__contains__
        )
    forged = make_stream_token(PATH, PARAMS, auth_token="another token", ttl=300, now=NOW)
    with pytest.raises(StreamTokenError, match="bad signature"):  # still checked first
        verify_stream_token(forged, path=PATH, auth_token=TOKEN, now=NOW, live=lambda _: True)


def test_wrong_path() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, now=NOW)
    with pytest.raises(StreamTokenError, match="wrong path") as info:
        verify_stream_token(token, path="/sales/stream", auth_token=TOKEN, now=NOW)
    assert info.value.call_uuid == "c-1"


def test_a_badly_signed_token_names_no_call() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token="OTHER", now=NOW)
    with pytest.raises(StreamTokenError, match="bad signature") as info:
        verify_stream_token(token, path=PATH, auth_token=TOKEN, now=NOW)
    assert info.value.call_uuid is None  # a forger's claim is not repeated as the call id


def test_tampered_payload_fails_the_signature() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, now=NOW)
    payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["a"]["From"] = "999"
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(StreamTokenError, match="bad signature"):
        verify_stream_token(f"{forged_payload}.{signature}", path=PATH, auth_token=TOKEN, now=NOW)


def test_tampered_signature_and_other_token() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, now=NOW)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(StreamTokenError, match="bad signature"):
        verify_stream_token(flipped, path=PATH, auth_token=TOKEN, now=NOW)
    with pytest.raises(StreamTokenError, match="bad signature"):
        verify_stream_token(token, path=PATH, auth_token="OTHER", now=NOW)


def test_key_is_derived_not_the_raw_auth_token() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=TOKEN, now=NOW)
    payload, signature = token.split(".")
    raw = hmac.new(TOKEN.encode(), payload.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != signature


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("no-dot-here", "malformed"),
        (".sig", "malformed"),
        ("!!!.", "malformed"),
        (base64.urlsafe_b64encode(b"[1,2]").decode() + ".", "malformed: payload is not a JSON"),
        (base64.urlsafe_b64encode(b'{"p":1}').decode() + ".", "malformed: 'p'"),
        (
            base64.urlsafe_b64encode(b'{"p":"/support/stream","c":null,"e":"x","a":{}}').decode()
            + ".",
            "malformed: 'e'",
        ),
        (
            base64.urlsafe_b64encode(b'{"p":"/support/stream","c":null,"e":1,"a":{"k":1}}').decode()
            + ".",
            "malformed: 'a'",
        ),
    ],
)
def test_malformed(token: str | None, reason: str) -> None:
    with pytest.raises(StreamTokenError) as info:
        verify_stream_token(token, path=PATH, auth_token=None, now=NOW)
    assert info.value.reason.startswith(reason)


def test_unsigned_token_in_development_mode() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=None, now=NOW)
    assert token.endswith(".")
    verified = verify_stream_token(token, path=PATH, auth_token=None, now=NOW)
    assert verified.params == PARAMS
    assert not verified.signed
    # Development mode still checks expiry and path.
    with pytest.raises(StreamTokenError, match="expired"):
        verify_stream_token(token, path=PATH, auth_token=None, now=NOW + 10_000)


def test_unsigned_token_refused_with_an_auth_token() -> None:
    token = make_stream_token(PATH, PARAMS, auth_token=None, now=NOW)
    with pytest.raises(StreamTokenError, match="unsigned"):
        verify_stream_token(token, path=PATH, auth_token=TOKEN, now=NOW)


def test_essential_params() -> None:
    params = {**PARAMS, "ALegUUID": "a", "BillRate": "0.1", "ForwardedFrom": "x"}
    assert essential_params(params) == {**PARAMS, "ALegUUID": "a"}
