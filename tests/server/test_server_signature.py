"""Plivo Signature V3 (PROTOCOL.md §7): the five vectors, several-signature headers, and a
cross-check against the ``plivo`` package's own validator."""

from __future__ import annotations

import random
import string

import pytest
from plivo.utils import validate_v3_signature

from callflow.server import signature_v3, string_to_sign, validate_signature_v3

TOKEN = "MY_AUTH_TOKEN_0123456789abcdef"
NONCE = "12345678901234567890"

VECTORS = [
    ("GET", "https://example.com/stream", {}, "cwhkWyxbNWrZpqfdJ94tDXNZ/skcexSAf/4VqhlxbTY="),
    (
        "GET",
        "https://example.com/stream?b=2&a=1",
        {},
        "SxOvrs9H7HfbstkxBmXTnZAX3b5psDa5NOyXNIMBFUc=",
    ),
    ("GET", "http://example.com:8080/stream", {}, "pn+oEzAMn7YfPV/zp4NhEMFC9UuDw/N/W6fxqrhDaJ0="),
    (
        "POST",
        "https://example.com/answer",
        {"CallUUID": "abc", "From": "111", "To": "222"},
        "axBUdsX/cQPDjtNuPKVERwxDfA7FM4Oo7Cpqez62MW8=",
    ),
    (
        "POST",
        "https://example.com/answer?x=1",
        {"CallUUID": "abc", "From": "111"},
        "ilhpMgk/X0S3A1KM60NreNIh58go5OHbV1szouLb4oE=",
    ),
]


@pytest.mark.parametrize(("method", "url", "params", "expected"), VECTORS)
def test_protocol_vectors(method: str, url: str, params: dict[str, str], expected: str) -> None:
    assert signature_v3(TOKEN, method=method, url=url, params=params, nonce=NONCE) == expected
    assert validate_signature_v3(
        TOKEN, method=method, url=url, params=params, nonce=NONCE, header=expected
    )


def test_string_to_sign_follows_the_four_rules() -> None:
    assert (
        string_to_sign(method="GET", url="https://e.com/s?b=2&a=1&a=0", nonce="n")
        == "https://e.com/s?a=0&a=1&b=2.n"
    )
    assert (
        string_to_sign(
            method="POST", url="https://e.com/a?x=1", params={"B": "2", "A": "1"}, nonce="n"
        )
        == "https://e.com/a?x=1.A1B2.n"
    )
    assert (
        string_to_sign(method="POST", url="https://e.com/a", params={"B": "2", "A": "1"}, nonce="n")
        == "https://e.com/a?A1B2.n"
    )
    # POST without form params signs like GET.
    assert string_to_sign(method="POST", url="https://e.com/a?x=%20y", nonce="n") == (
        "https://e.com/a?x= y.n"
    )


def test_pairs_and_mappings_sign_alike() -> None:
    url = "https://example.com/answer"
    as_map = signature_v3(TOKEN, method="POST", url=url, params={"a": ["2", "1"]}, nonce=NONCE)
    as_pairs = signature_v3(
        TOKEN, method="POST", url=url, params=[("a", "1"), ("a", "2")], nonce=NONCE
    )
    assert as_map == as_pairs


def test_header_with_several_signatures() -> None:
    method, url, params, good = VECTORS[3]
    other = signature_v3("ANOTHER_TOKEN", method=method, url=url, params=params, nonce=NONCE)
    for header in (f"{other},{good}", f"{good}, {other}", f" {other} ,  {good} "):
        assert validate_signature_v3(
            TOKEN, method=method, url=url, params=params, nonce=NONCE, header=header
        )
    assert not validate_signature_v3(
        TOKEN, method=method, url=url, params=params, nonce=NONCE, header=f"{other},{other}"
    )


@pytest.mark.parametrize(
    "change",
    ["url", "param", "nonce", "token", "empty"],
)
def test_any_change_invalidates(change: str) -> None:
    method, url, params, good = VECTORS[3]
    kwargs = {"method": method, "url": url, "params": dict(params), "nonce": NONCE, "header": good}
    token = TOKEN
    if change == "url":
        kwargs["url"] = "https://example.com/answer2"
    elif change == "param":
        kwargs["params"] = {**params, "To": "333"}
    elif change == "nonce":
        kwargs["nonce"] = NONCE + "0"
    elif change == "token":
        token = TOKEN + "x"
    else:
        kwargs["header"] = ""
    assert not validate_signature_v3(token, **kwargs)  # type: ignore[arg-type]


def test_other_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="GET and POST"):
        signature_v3(TOKEN, method="PUT", url="https://e.com/", nonce=NONCE)


def _word(rng: random.Random, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))


@pytest.mark.parametrize("seed", range(25))
def test_agrees_with_plivo_sdk(seed: int) -> None:
    rng = random.Random(seed)
    method = rng.choice(["GET", "POST"])
    scheme = rng.choice(["http", "https"])
    port = rng.choice(["", ":8080"])
    url = f"{scheme}://{_word(rng).lower()}.example.com{port}/{_word(rng)}"
    if rng.random() < 0.5:
        url += "?" + "&".join(f"{_word(rng)}={_word(rng)}" for _ in range(rng.randint(1, 3)))
    params: dict[str, str] = {}
    if method == "POST":
        params = {_word(rng): _word(rng, string.printable[:90]) for _ in range(rng.randint(0, 6))}
    nonce = str(rng.randint(10**19, 10**20))
    ours = signature_v3(TOKEN, method=method, url=url, params=params, nonce=nonce)
    assert validate_v3_signature(method, url, nonce, TOKEN, ours, dict(params))
    assert validate_signature_v3(
        TOKEN, method=method, url=url, params=params, nonce=nonce, header=ours
    )
