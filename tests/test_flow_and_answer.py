"""@flow's decoration-time checks, the flows loader, and the answer XML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from lxml import etree
from plivo import plivoxml

from callflow import Call, Flow, FlowLoadError, Format, answer_xml, flow, load_flows

STREAM_URL = "wss://abc.ngrok.app/support/stream?t=token"


async def handler(call: Call) -> None:
    await call.say(b"")


def test_flow_returns_a_flow_value_with_its_routes() -> None:
    f = flow("/support", format=Format.MULAW_8K)(handler)
    assert isinstance(f, Flow)
    assert (f.path, f.stream_path, f.status_path) == (
        "/support",
        "/support/stream",
        "/support/status",
    )
    assert f.format is Format.MULAW_8K
    assert f.handler is handler


@pytest.mark.parametrize(
    "bad",
    [
        lambda call: None,  # not async
        handler.__call__,  # a method-wrapper, not a coroutine function
    ],
)
def test_flow_rejects_non_async_handlers(bad: object) -> None:
    with pytest.raises(TypeError, match="async def"):
        flow("/x", format=Format.MULAW_8K)(bad)  # type: ignore[arg-type]


def test_flow_rejects_wrong_parameters() -> None:
    async def two(call: Call, other: int) -> None: ...

    async def none() -> None: ...

    async def annotated(call: int) -> None: ...

    for bad in (two, none):
        with pytest.raises(TypeError, match="exactly one parameter"):
            flow("/x", format=Format.MULAW_8K)(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="annotated int"):
        flow("/x", format=Format.MULAW_8K)(annotated)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["audio/x-mulaw;rate=8000", "audio/x-alaw", 8000, None])
def test_flow_rejects_anything_but_plivos_three_formats(fmt: object) -> None:
    with pytest.raises(TypeError, match="Format"):
        flow("/x", format=fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["support", "/a b", "/x/", "/x/stream", "/x/status", "/a//b", ""])
def test_flow_rejects_bad_paths(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        flow(path, format=Format.MULAW_8K)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"audio_track": "both"}, "audio_track='inbound'"),
        ({"stream_timeout": 0}, "stream_timeout"),
        ({"status_callback_method": "PUT"}, "status_callback_method"),
        ({"noise_cancellation_level": 50}, "noise_cancellation_level"),
        ({"extra_headers": {"a-b": "1"}}, "alphanumeric"),
        ({"extra_headers": {"k": "v" * 600}}, "512"),
    ],
)
def test_flow_rejects_settings_plivo_does_not_accept(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        flow("/x", format=Format.MULAW_8K, **kwargs)  # type: ignore[arg-type]


def _stream(xml: bytes) -> etree._Element:
    root = etree.fromstring(xml)
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Stream", "Hangup"]
    return root[0]


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("keep_call_alive", [True, False])
def test_answer_xml_matches_plivos_stream_element(fmt: Format, keep_call_alive: bool) -> None:
    f = flow(
        "/support",
        format=fmt,
        stream_timeout=600,
        status_callback_method="GET",
        extra_headers={"team": "sales", "tier": "2"},
        keep_call_alive=keep_call_alive,
    )(handler)
    ours = _stream(answer_xml(f, stream_url=STREAM_URL, status_callback_url="https://abc/status"))
    reference = etree.fromstring(
        plivoxml.StreamElement(
            STREAM_URL,
            bidirectional=True,
            audioTrack="inbound",
            streamTimeout=600,
            statusCallbackUrl="https://abc/status",
            statusCallbackMethod="GET",
            contentType=fmt.content_type,
            extraHeaders="team=sales;tier=2",
            keepCallAlive=keep_call_alive,
        ).to_string(False)
    )
    assert dict(ours.attrib) == dict(reference.attrib)
    assert ours.text == reference.text == STREAM_URL
    assert ours.get("contentType") == fmt.content_type


def test_answer_xml_always_writes_content_type_and_noise_cancellation() -> None:
    plain = _stream(answer_xml(flow("/p", format=Format.L16_8K)(handler), stream_url=STREAM_URL))
    assert plain.get("contentType") == "audio/x-l16;rate=8000"
    assert plain.get("bidirectional") == "true"
    assert plain.get("keepCallAlive") == "true"
    assert "statusCallbackUrl" not in plain.attrib
    assert "noiseCancellation" not in plain.attrib
    nc = flow("/p", format=Format.L16_8K, noise_cancellation=True, noise_cancellation_level=70)
    quiet = _stream(answer_xml(nc(handler), stream_url=STREAM_URL))
    assert (quiet.get("noiseCancellation"), quiet.get("noiseCancellationLevel")) == ("true", "70")


def test_answer_xml_rejects_urls_plivo_would() -> None:
    f = flow("/p", format=Format.MULAW_8K)(handler)
    with pytest.raises(ValueError, match="ws://"):
        answer_xml(f, stream_url="https://not-a-websocket")
    with pytest.raises(ValueError, match="2048"):
        answer_xml(f, stream_url="wss://x/" + "a" * 2048)


def _write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(textwrap.dedent(body))


FLOW_MODULE = """
    from callflow import Call, Format, flow

    @flow("{path}", format=Format.MULAW_8K)
    async def {name}(call: Call) -> None:
        pass
"""


def test_loader_collects_flows_from_every_module(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", FLOW_MODULE.format(path="/a", name="a"))
    _write(tmp_path, "b.py", FLOW_MODULE.format(path="/b", name="b"))
    _write(tmp_path, "_private.py", "raise RuntimeError('never imported')")
    _write(tmp_path, "helpers.py", "X = 1")
    flows = load_flows(tmp_path)
    assert [f.path for f in flows] == ["/a", "/b"]


def test_loader_names_the_module_that_fails(tmp_path: Path) -> None:
    _write(tmp_path, "good.py", FLOW_MODULE.format(path="/a", name="a"))
    _write(tmp_path, "broken.py", "import no_such_module_anywhere")
    with pytest.raises(FlowLoadError, match=r"broken\.py.*no_such_module_anywhere"):
        load_flows(tmp_path)


def test_loader_refuses_two_flows_on_one_path(tmp_path: Path) -> None:
    _write(tmp_path, "one.py", FLOW_MODULE.format(path="/same", name="one"))
    _write(tmp_path, "two.py", FLOW_MODULE.format(path="/same", name="two"))
    with pytest.raises(FlowLoadError, match="two flows on path '/same'"):
        load_flows(tmp_path)


def test_loader_refuses_a_folder_without_flows(tmp_path: Path) -> None:
    _write(tmp_path, "nothing.py", "X = 1")
    with pytest.raises(FlowLoadError, match="no flows"):
        load_flows(tmp_path)
    with pytest.raises(FlowLoadError, match="not a folder"):
        load_flows(tmp_path / "missing")


def test_bundled_flows_load_and_use_two_formats() -> None:
    flows = load_flows(Path(__file__).resolve().parents[1] / "flows")
    assert {f.path for f in flows} >= {"/support", "/echo"}
    assert len({f.format for f in flows}) >= 2
