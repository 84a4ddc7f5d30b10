"""Voice benchmarks: the VADs on speech and steady noise, synthesis speed per engine, and the
CPU of a call whose prompt is text from the render cache against the same prompt as a WAV.

    python -m bench.voice [--quick] [--json]

* VAD: each detector (energy rule, WebRTC model) on steady white and brown noise at several
  levels: false speech starts per minute (each would be a false barge-in); on speech (Piper,
  three phrases) mixed into the same noise: the onset delay from the phrase's first sample to
  ``start`` and the phrases missed; and CPU per listening call (µs per 20 ms frame, and the
  share of one core one listening call takes).
* Synthesis: seconds of CPU wall time per second of audio, for each offline engine installed.
* Playback: CPU seconds per call of the same flow playing a prompt from a WAV file and the
  same audio as text from the render cache, in the same run (FakePlivo, virtual time; the
  flow's side only, as ``say`` sees it).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import trio
import trio.testing

from callflow import Call, Format, flow
from callflow.audio import Audio, write_wav
from callflow.protocol import Format as Fmt
from callflow.testing import FakePlivo
from callflow.voice import (
    EspeakNg,
    Piper,
    RenderCache,
    SpeechDetector,
    Text,
    TtsChoice,
    TtsUnavailable,
)

RATE = 8000
FRAME = RATE // 50
PHRASES = ("sales", "I would like to hear my balance please", "operator")
LEVELS_DBFS = (-50.0, -40.0, -35.0, -30.0, -25.0)
MODELS = ("energy", "webrtc")


def _noise(
    kind: str, seconds: float, dbfs: float, rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    n = int(seconds * RATE)
    white = rng.standard_normal(n)
    if kind == "brown":
        signal = np.cumsum(white)
        signal -= np.convolve(signal, np.ones(400) / 400, mode="same")  # keep it stationary
    else:
        signal = white
    signal = signal / np.sqrt(np.mean(signal**2)) * (10 ** (dbfs / 20) * 32768)
    return signal


def _frames(samples: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    pcm = np.clip(samples, -32768, 32767).astype(np.int16)
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def _through_ulaw(audio: Audio) -> np.ndarray[Any, Any]:
    from callflow.audio import decode

    return decode(audio.encoded(Fmt.MULAW_8K), Fmt.MULAW_8K).astype(np.float64)


def vad_figures(speech: list[np.ndarray[Any, Any]], noise_s: float) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    rows = []
    for model in MODELS:
        for kind in ("white", "brown"):
            for level in LEVELS_DBFS:
                noise = _noise(kind, noise_s, level, rng)
                # A prompt every 5 s over steady noise, each with its own detector (as each
                # say has): a prompt the noise interrupts is a false barge-in.
                frames = _frames(noise)
                per_prompt = 5 * 50
                starts = 0
                began = time.process_time()
                for first in range(0, len(frames) - per_prompt + 1, per_prompt):
                    detector = SpeechDetector(model, RATE, gap_s=0.06)
                    for frame in frames[first : first + per_prompt]:
                        if detector.push(frame) == "start":
                            starts += 1
                            break
                cpu = time.process_time() - began
                frames = frames[: len(frames) // per_prompt * per_prompt]
                detector = SpeechDetector(model, RATE, gap_s=0.06)
                began = time.process_time()
                for frame in frames:
                    detector.push(frame)
                per_frame_us = (time.process_time() - began) / len(frames) * 1e6
                del cpu
                # speech over the same noise: the delay from each phrase's start to "start"
                delays, missed = [], 0
                for phrase in speech:
                    gap = np.zeros(int(1.5 * RATE))
                    mix = np.concatenate([gap, phrase, gap])
                    mix = mix + _noise(kind, len(mix) / RATE, level, rng)
                    detector = SpeechDetector(model, RATE, gap_s=0.06)
                    onset = None
                    for index, frame in enumerate(_frames(mix)):
                        if detector.push(frame) == "start" and index * FRAME >= len(gap) - FRAME:
                            onset = index * FRAME / RATE - len(gap) / RATE
                            break
                    if onset is None:
                        missed += 1
                    else:
                        delays.append(onset)
                rows.append(
                    {
                        "model": model,
                        "noise": kind,
                        "level_dbfs": level,
                        "false_starts_per_min": starts / (noise_s / 60),
                        "onset_delay_ms": 1000 * float(np.mean(delays)) if delays else None,
                        "missed": missed,
                        "us_per_frame": per_frame_us,
                        "core_share_per_call": per_frame_us / 20000,
                    }
                )
    return rows


def synthesis_figures(texts: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name, make in (("espeak-ng", EspeakNg), ("piper", Piper)):
        try:
            engine = make()
        except TtsUnavailable as exc:
            rows.append({"engine": name, "missing": str(exc)})
            continue
        wall = cpu = audio_s = 0.0
        for text in texts:
            before_wall = time.perf_counter()
            before_cpu = _children_cpu()
            audio = engine.synthesize(Text(text))
            wall += time.perf_counter() - before_wall
            cpu += _children_cpu() - before_cpu
            audio_s += audio.duration_s
        rows.append(
            {
                "engine": engine.name,
                "audio_s": audio_s,
                "wall_s_per_audio_s": wall / audio_s,
                "cpu_s_per_audio_s": cpu / audio_s,
            }
        )
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playback_figures(calls: int, folder: Path) -> dict[str, Any]:
    engine = Piper() if _has_piper() else EspeakNg()
    choice = TtsChoice(engine, cache=RenderCache(folder / "cache"))
    text = Text("Thank you for calling Example Bank. Your call matters to us.")
    rendered = choice.renderer().render(text, Fmt.MULAW_8K)
    wav = folder / "prompt.wav"
    write_wav(wav, rendered.resampled(8000))

    @flow("/wav", format=Format.MULAW_8K)
    async def from_wav(call: Call) -> None:
        await call.say(str(wav))

    @flow("/text", format=Format.MULAW_8K, tts=choice)
    async def from_text(call: Call) -> None:
        await call.say(text)

    def run(target: Any) -> float:
        async def calls_loop() -> None:
            for _ in range(calls):
                async with FakePlivo(target, send_media=False) as caller:
                    await caller.hung_up()

        trio.run(calls_loop, clock=trio.testing.MockClock(autojump_threshold=0))  # warm
        began = time.process_time()
        trio.run(calls_loop, clock=trio.testing.MockClock(autojump_threshold=0))
        return (time.process_time() - began) / calls

    wav_s = run(from_wav)
    text_s = run(from_text)
    return {
        "engine": engine.name,
        "calls": calls,
        "prompt_s": rendered.duration_s,
        "cpu_ms_per_call_wav": wav_s * 1000,
        "cpu_ms_per_call_text_cached": text_s * 1000,
        "ratio_text_to_wav": text_s / wav_s,
    }


def _has_piper() -> bool:
    try:
        Piper()
    except TtsUnavailable:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voice")
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        voice = Piper() if _has_piper() else EspeakNg()
        speech = [_through_ulaw(voice.synthesize(Text(p)).resampled(RATE)) for p in PHRASES]
        results = {
            "vad": vad_figures(speech, noise_s=20.0 if args.quick else 120.0),
            "synthesis": synthesis_figures(list(PHRASES) * (1 if args.quick else 3)),
            "playback": playback_figures(20 if args.quick else 100, folder),
        }
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(
        "VAD (20 ms frames, 8 kHz): false barge-ins per minute of steady noise (a prompt every"
        " 5 s); onset delay and misses on 3 phrases in the same noise"
    )
    print(
        f"{'model':8} {'noise':6} {'dBFS':>5} {'false/min':>10} {'onset ms':>9} {'missed':>6} "
        f"{'µs/frame':>9} {'core/call':>9}"
    )
    for r in results["vad"]:
        onset = "-" if r["onset_delay_ms"] is None else f"{r['onset_delay_ms']:.0f}"
        print(
            f"{r['model']:8} {r['noise']:6} {r['level_dbfs']:5.0f} "
            f"{r['false_starts_per_min']:10.1f} {onset:>9} {r['missed']:6d} "
            f"{r['us_per_frame']:9.1f} {r['core_share_per_call']:9.5f}"
        )
    print("\nSynthesis (whole texts, program start included)")
    for r in results["synthesis"]:
        if "missing" in r:
            print(f"  {r['engine']}: not installed ({r['missing']})")
        else:
            print(
                f"  {r['engine']}: {r['wall_s_per_audio_s']:.3f} s wall and "
                f"{r['cpu_s_per_audio_s']:.3f} s CPU per second of audio "
                f"({r['audio_s']:.1f} s rendered)"
            )
    p = results["playback"]
    print(
        f"\nPlayback ({p['calls']} calls, {p['prompt_s']:.2f} s prompt, {p['engine']}): "
        f"{p['cpu_ms_per_call_wav']:.2f} ms CPU per call from a WAV, "
        f"{p['cpu_ms_per_call_text_cached']:.2f} ms as cached text "
        f"(ratio {p['ratio_text_to_wav']:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
