"""``callflow prompts build FOLDER``: render every fixed text prompt ahead of time.

The flows' modules declare their fixed prompts as module-level
:class:`~callflow.voice.Prompts`; each is rendered with the flow's engine (``tts=``, else
the server's) for the flow's stream format into the render cache, so a call never
synthesises a fixed prompt live. Rendering what is already there costs nothing.
"""

from __future__ import annotations

import argparse
import os
import time

from callflow._loader import load_flows, module_prompts
from callflow.cli._common import add_folder
from callflow.voice import CACHE_ENV, TTS_ENV, default_cache_dir, default_tts


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``prompts build``."""
    prompts = commands.add_parser("prompts", help="text prompts: render them ahead of time")
    actions = prompts.add_subparsers(title="actions", metavar="ACTION")
    build = actions.add_parser(
        "build", help="render every text prompt the flows in FOLDER declare into the cache"
    )
    add_folder(build)
    build.add_argument(
        "--tts",
        metavar="ENGINE",
        default=None,
        help="engine for flows that name none, as serve --tts takes it",
    )
    build.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        help=f"render cache folder (${CACHE_ENV}, else ~/.cache/callflow/prompts)",
    )
    build.set_defaults(command_func=_build)


def _build(args: argparse.Namespace) -> int:
    if args.tts:
        os.environ[TTS_ENV] = args.tts
    if args.cache:
        os.environ[CACHE_ENV] = args.cache
    flows = load_flows(args.folder)
    rendered = cached = 0
    began = time.perf_counter()
    for flow in flows:
        texts = [text for prompts in module_prompts(flow) for _, text in prompts.items()]
        if not texts:
            continue
        renderer = (flow.tts or default_tts()).renderer()
        for text in texts:
            if renderer.cached(text, flow.format) is not None:
                cached += 1
                continue
            renderer.render(text, flow.format)
            rendered += 1
        print(f"{flow.path}: {len(texts)} text prompts ({renderer.tts.name}, {flow.format.name})")
    elapsed = time.perf_counter() - began
    print(
        f"rendered {rendered}, already cached {cached}, in {elapsed:.1f} s "
        f"(cache {default_cache_dir()})"
    )
    return 0
