"""Which call a connection names, for choosing the worker that owns it (read unchecked)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from callflow.server._handoff import call_from_query, owner_of
from callflow.server._token import make_stream_token


def test_the_call_uuid_parameter_names_the_call() -> None:
    assert call_from_query("CallUUID=abc&t=x.y") == "abc"


def test_without_the_parameter_the_stream_token_names_it() -> None:
    token = make_stream_token("/s/stream", {"CallUUID": "from-token"}, auth_token="secret")
    assert call_from_query(f"t={quote(token)}") == "from-token"


@pytest.mark.parametrize(
    "query", ["", "t=", "t=%C3%A9.x", "t=!!!.sig", "t=bnVsbA.sig", "t=e30.sig", "other=1"]
)
def test_a_query_that_names_no_readable_call_names_none(query: str) -> None:
    # "bnVsbA" is base64url for null, "e30" for {}: JSON, but no call in it
    assert call_from_query(query) is None


def test_the_owner_is_the_same_for_the_same_call_and_within_range() -> None:
    owners = {owner_of(f"call-{n}", 3) for n in range(100)}
    assert owners == {0, 1, 2}
    assert owner_of("call-7", 3) == owner_of("call-7", 3)
