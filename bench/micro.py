"""Micro-benchmarks: codecs, parse/encode per message, the prompt cache, the media fast path.

    python -m bench.micro [--quick] [--json]

Every figure is the best of several repeats (the least disturbed), on this process's one
core. Units: codecs as *× real time* (seconds of audio processed per CPU second) and µs per
20 ms frame; messages in µs per message; the cache in µs per ``Audio.payloads`` call.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trio

from callflow import Format, load_flows
from callflow.audio import (
    Audio,
    encode_count,
    l16_decode,
    l16_encode,
    ulaw_decode,
    ulaw_encode,
)
from callflow.protocol import (
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    ExtraHeaders,
    InboundEvent,
    Media,
    PlayAudio,
    PlayedStream,
    Start,
    encode,
    encode_event,
    parse,
    play_audio_message,
    play_audio_prefix,
)

FLOWS = Path(__file__).resolve().parent / "flows"


def best_us(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Microseconds per call of ``fn``: the best of ``repeat`` timings of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - began)
    return best / number * 1e6


def _speech_like(seconds: float, rate: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    rng = np.random.default_rng(1)
    return (rng.standard_normal(int(seconds * rate)) * 3000).clip(-32768, 32767).astype(np.int16)


def _b64_then(decoder: Callable[[bytes], object], b64: bytes) -> object:
    return decoder(base64.b64decode(b64))


def codecs(scale: int) -> dict[str, Any]:
    """μ-law and L16 encode/decode: × real time on 1 s blocks, µs per 20 ms frame."""
    out: dict[str, Any] = {}
    cases = (
        ("ulaw_8k", 8000, ulaw_encode, ulaw_decode),
        ("l16_8k", 8000, l16_encode, l16_decode),
        ("l16_16k", 16000, l16_encode, l16_decode),
    )
    for name, rate, enc, dec in cases:
        second = _speech_like(1.0, rate)
        frame = second[: rate // 50]
        wire_s, wire_f = enc(second), enc(frame)
        b64_f = base64.b64encode(wire_f)
        enc_s = best_us(functools.partial(enc, second), 20 * scale)
        dec_s = best_us(functools.partial(dec, wire_s), 20 * scale)
        enc_f = best_us(functools.partial(enc, frame), 500 * scale)
        dec_f = best_us(functools.partial(dec, wire_f), 500 * scale)
        out[name] = {
            "encode_x_realtime": round(1e6 / enc_s),
            "decode_x_realtime": round(1e6 / dec_s),
            "encode_us_per_frame": round(enc_f, 2),
            "decode_us_per_frame": round(dec_f, 2),
            "decode_b64_frame_us": round(
                best_us(functools.partial(_b64_then, dec, b64_f), 500 * scale), 2
            ),
        }
    return out


def messages(scale: int) -> dict[str, float]:
    """µs per message: parse (inbound) and encode (outbound)."""
    headers = ExtraHeaders.parse("{}")
    payload = base64.b64encode(b"\xff" * 160).decode()
    inbound: dict[str, InboundEvent] = {
        "media": Media(
            sequence_number=12345,
            stream_id="b4c7d1e2-0000-4000-8000-000000000001",
            track="inbound",
            timestamp_ms=1700000000000,
            chunk=4321,
            payload=payload,
            extra_headers=headers,
        ),
        "dtmf": Dtmf(
            sequence_number=12,
            stream_id="s",
            digit="5",
            track="inbound",
            timestamp_ms=1700000000000,
            extra_headers=headers,
        ),
        "playedStream": PlayedStream(sequence_number=13, stream_id="s", name="cf12"),
        "clearedAudio": ClearedAudio(sequence_number=14, stream_id="s"),
        "start": Start(
            sequence_number=0,
            call_id="c",
            stream_id="s",
            account_id="a",
            tracks=("inbound",),
            encoding="audio/x-mulaw",
            sample_rate=8000,
            extra_headers=headers,
        ),
    }
    out: dict[str, float] = {}
    for name, event in inbound.items():
        text = encode_event(event)
        out[f"parse_{name}_us"] = round(best_us(functools.partial(parse, text), 5000 * scale), 2)
        out[f"json_loads_{name}_us"] = round(
            best_us(functools.partial(json.loads, text), 5000 * scale), 2
        )
    fmt = Format.MULAW_8K
    chunk = base64.b64encode(bytes(12288)).decode()
    prefix = play_audio_prefix("s", fmt)
    play = PlayAudio("s", fmt.encoding, fmt.sample_rate, chunk)
    out["encode_playAudio_prefix_us"] = round(
        best_us(lambda: play_audio_message(prefix, chunk), 5000 * scale), 2
    )
    out["encode_playAudio_us"] = round(best_us(lambda: encode(play), 2000 * scale), 2)
    out["encode_checkpoint_us"] = round(
        best_us(lambda: encode(Checkpoint(stream_id="s", name="cf1")), 5000 * scale), 2
    )
    out["encode_clearAudio_us"] = round(
        best_us(lambda: encode(ClearAudio(stream_id="s")), 5000 * scale), 2
    )
    return out


def prompt_cache(scale: int) -> dict[str, Any]:
    """``Audio.payloads``: first call on a fresh value (miss: codec, resampling for a 16 kHz
    source, chunking, base64) vs later calls (hit)."""
    out: dict[str, Any] = {}
    for name, rate in (("8k_source", 8000), ("16k_source", 16000)):
        samples = _speech_like(3.0, rate)
        misses = []
        for _ in range(5 * scale):
            fresh = Audio(samples, rate)
            began = time.perf_counter()
            fresh.payloads(Format.MULAW_8K)
            misses.append(time.perf_counter() - began)
        warm = Audio(samples, rate)
        warm.payloads(Format.MULAW_8K)
        hit = best_us(functools.partial(warm.payloads, Format.MULAW_8K), 5000 * scale)
        miss = min(misses) * 1e6
        out[name] = {
            "prompt_s": 3.0,
            "miss_us": round(miss, 1),
            "hit_us": round(hit, 3),
            "speedup": round(miss / hit),
        }
    return out


async def _encoded_once(calls: int) -> dict[str, int]:
    from callflow.testing import FakePlivo

    flow = load_flows(FLOWS)[0]
    module = sys.modules[flow.handler.__module__]
    before = encode_count()
    async with trio.open_nursery() as nursery:
        for _ in range(calls):

            async def one() -> None:
                async with FakePlivo(flow, send_media=False) as caller:
                    await caller.hears(module.PROMPTS[0])

            nursery.start_soon(one)
    return {"calls": calls, "prompt_encodes": encode_count() - before}


def encoded_once(calls: int = 50) -> dict[str, int]:
    """Run the bench IVR for ``calls`` in-memory calls (virtual time) that each hear the first
    prompt; count how often any ``Audio`` was encoded meanwhile (1 is the promise)."""
    from trio.testing import MockClock

    return trio.run(_encoded_once, calls, clock=MockClock(autojump_threshold=0))


def _media_message() -> str:
    """One inbound media message as Plivo sends it: 20 ms of μ-law silence, 8 kHz."""
    return encode_event(
        Media(
            sequence_number=1,
            stream_id="s",
            track="inbound",
            timestamp_ms=1700000000000,
            chunk=1,
            payload=base64.b64encode(b"\xff" * 160).decode(),
            extra_headers=ExtraHeaders.parse("{}"),
        )
    )


def media_fast_path(scale: int) -> dict[str, float]:
    """µs per inbound media message through the call reader's dispatch
    (``Dispatcher.dispatch``, private), with no listener (counted only) and with one
    ``listen()`` (parsed and decoded)."""
    from callflow.observe import METRICS
    from callflow.runtime import Call, CallInfo, memory_transport_pair
    from callflow.runtime._dispatch import Dispatcher

    results: dict[str, float] = {}

    async def measure() -> None:
        _, server_side = memory_transport_pair()
        info = CallInfo(
            call_id="c",
            stream_id="s",
            account_id="a",
            tracks=("inbound",),
            format=Format.MULAW_8K,
            extra_headers=ExtraHeaders.parse("{}"),
        )
        call = Call(info, server_side)
        dispatch = Dispatcher(call, METRICS.for_flow("/bench")).dispatch
        text = _media_message()
        results["no_listener_us"] = round(best_us(lambda: dispatch(text), 5000 * scale), 2)
        listener = call.listen(max_frames=10)
        results["one_listener_us"] = round(best_us(lambda: dispatch(text), 5000 * scale), 2)
        listener.close()

    trio.run(measure)
    return results


def websocket_frames(scale: int) -> dict[str, float]:
    """µs per inbound media message from the bytes of one masked WebSocket frame to its text:
    websockets' sans-IO parser (``receive_data`` + ``events_received`` + decode) against the
    fast path of ``callflow.server._wsfast`` (private) that reads Plivo's frames."""
    import trio.testing
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    from callflow.server._wsfast import FastWebSocketTransport

    text = _media_message()
    results: dict[str, float] = {}

    async def accepted() -> FastWebSocketTransport:
        client = ClientProtocol(parse_uri("ws://localhost/s"))
        client.send_request(client.connect())
        _, server_stream = trio.testing.memory_stream_pair()
        return await FastWebSocketTransport.accept(server_stream, b"".join(client.data_to_send()))

    async def measure() -> None:
        client = ClientProtocol(parse_uri("ws://localhost/s"))
        client.send_request(client.connect())
        client.data_to_send()
        client.state = client.state.OPEN
        client.send_text(text.encode())
        frame = b"".join(client.data_to_send())
        general = (await accepted())._proto
        fast = await accepted()
        out = fast._messages

        def sans_io() -> None:
            general.receive_data(frame)
            for event in general.events_received():
                event.data.decode()  # type: ignore[union-attr]

        def fast_path() -> None:
            fast._receive_fast(frame)
            out.pop(0)

        results["websockets_sans_io_us"] = round(best_us(sans_io, 20000 * scale), 2)
        results["fast_path_us"] = round(best_us(fast_path, 20000 * scale), 2)

        # the other way: one playAudio message (4 KB: 0.5 s of μ-law) to the bytes of its
        # frame, by websockets' protocol and by callflow's own framing (_wsframes.frame)
        from callflow.server._wsframes import TEXT
        from callflow.server._wsframes import frame as own_frame

        play = ('{"event":"playAudio","media":{"payload":"' + "A" * 4096 + '"}}').encode()

        def sans_io_out() -> None:
            general.send_text(play)
            general.data_to_send()

        def own_out() -> None:
            own_frame(TEXT, play)

        results["send_websockets_us"] = round(best_us(sans_io_out, 20000 * scale), 2)
        results["send_own_frame_us"] = round(best_us(own_out, 20000 * scale), 2)

    trio.run(measure)
    return results


def run(*, quick: bool = False) -> dict[str, Any]:
    """Every micro-benchmark; a JSON-able dict."""
    scale = 1 if quick else 3
    return {
        "codecs": codecs(scale),
        "messages": messages(scale),
        "prompt_cache": prompt_cache(scale),
        "encoded_once": encoded_once(20 if quick else 50),
        "media_dispatch": media_fast_path(scale),
        "websocket_frames": websocket_frames(scale),
    }


def render(result: dict[str, Any]) -> list[str]:
    """The figures as text lines."""
    lines = ["codecs (× real time on 1 s blocks; µs per 20 ms frame):"]
    for name, c in result["codecs"].items():
        lines.append(
            f"  {name:8s} encode {c['encode_x_realtime']:>9,}×  "
            f"decode {c['decode_x_realtime']:>9,}×   frame: encode "
            f"{c['encode_us_per_frame']:.2f} µs, decode {c['decode_us_per_frame']:.2f} µs "
            f"(with base64 {c['decode_b64_frame_us']:.2f} µs)"
        )
    m = result["messages"]
    lines.append("messages (µs each; parse = callflow.protocol.parse, json = json.loads alone):")
    for name in ("media", "dtmf", "playedStream", "clearedAudio", "start"):
        lines.append(
            f"  parse {name:13s} {m[f'parse_{name}_us']:6.2f} µs   (json.loads "
            f"{m[f'json_loads_{name}_us']:.2f} µs)"
        )
    lines.append(
        f"  encode playAudio (16 KB payload): prefix path {m['encode_playAudio_prefix_us']:.2f} µs,"
        f" encode() {m['encode_playAudio_us']:.2f} µs; checkpoint {m['encode_checkpoint_us']:.2f}"
        f" µs; clearAudio {m['encode_clearAudio_us']:.2f} µs"
    )
    lines.append("prompt cache (Audio.payloads, 3 s prompt to μ-law 8 kHz):")
    for name, c in result["prompt_cache"].items():
        lines.append(
            f"  {name}: miss {c['miss_us']:.0f} µs, hit {c['hit_us']:.2f} µs ({c['speedup']:,}×)"
        )
    e = result["encoded_once"]
    lines.append(f"prompt encodes for {e['calls']} calls of the bench IVR: {e['prompt_encodes']}")
    d = result["media_dispatch"]
    lines.append(
        f"media message through the reader's dispatch: no listener {d['no_listener_us']:.2f} µs, "
        f"one listener (decodes) {d['one_listener_us']:.2f} µs"
    )
    w = result["websocket_frames"]
    lines.append(
        f"WebSocket frame → text, one media message: websockets sans-IO "
        f"{w['websockets_sans_io_us']:.2f} µs, _wsfast fast path {w['fast_path_us']:.2f} µs"
    )
    if "send_own_frame_us" in w:
        lines.append(
            f"text → WebSocket frame, one 4 KB playAudio: websockets sans-IO "
            f"{w['send_websockets_us']:.2f} µs, _wsframes.frame {w['send_own_frame_us']:.2f} µs"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
