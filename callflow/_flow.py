"""``@flow``: declare a call flow and the ``<Stream>`` settings Plivo should use for it."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Literal

import attrs

from callflow.protocol import Format
from callflow.voice import Stt, TtsChoice, TtsSpec

if TYPE_CHECKING:
    from callflow.runtime import Call

FlowHandler = Callable[["Call"], Awaitable[None]]

AudioTrack = Literal["inbound", "outbound", "both"]
HttpMethod = Literal["GET", "POST"]

LOADER_PACKAGE_PREFIX = "_callflow_flows_"
"""The private package the loader imports flow modules under."""

_PATH_RE = re.compile(r"^/[A-Za-z0-9._~\-/]*$")
_RESERVED_SUFFIXES = ("/stream", "/status", "/machine")
_HEADER_KEY_RE = re.compile(r"^[A-Za-z0-9]+$")
_HEADER_VALUE_RE = re.compile(r"^[A-Za-z0-9]*$")


@attrs.frozen(kw_only=True)
class StreamSettings:
    """The ``<Stream>`` element's attributes for one flow (PROTOCOL.md §5, Plivo's Stream XML
    page, seed ``003_…``).

    Every field is written explicitly into the answer XML, so Plivo's defaults (which differ
    between its pages) never decide anything.

    Attributes:
        format: the audio format both ways (``contentType``).
        bidirectional: ``bidirectional``; must be true for the flow to play audio.
        audio_track: ``audioTrack``; Plivo requires ``inbound`` when bidirectional.
        stream_timeout: ``streamTimeout`` in seconds (positive int), default 86400.
        status_callback_url: ``statusCallbackUrl``; ``None`` means callflow's own
            ``<path>/status`` endpoint on the public URL.
        status_callback_method: ``statusCallbackMethod``, ``GET`` or ``POST``.
        extra_headers: ``extraHeaders`` as a mapping, written ``k=v;k=v`` (alphanumerics only,
            at most 512 bytes).
        keep_call_alive: ``keepCallAlive``; with true the stream runs alone and the XML after
            it (``<Hangup/>``) runs when the stream ends.
        noise_cancellation: ``noiseCancellation``.
        noise_cancellation_level: ``noiseCancellationLevel``, 60–100, written only with
            ``noise_cancellation``.
    """

    format: Format
    bidirectional: bool = True
    audio_track: AudioTrack = "inbound"
    stream_timeout: int = 86400
    status_callback_url: str | None = None
    status_callback_method: HttpMethod = "POST"
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    keep_call_alive: bool = True
    noise_cancellation: bool = False
    noise_cancellation_level: int = 85

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.format, Format):
            raise TypeError(
                f"format must be one of Plivo's three formats (callflow.Format.MULAW_8K, "
                f"L16_8K, L16_16K), not {self.format!r}"
            )
        if self.audio_track not in ("inbound", "outbound", "both"):
            raise ValueError(
                f"audio_track must be inbound, outbound or both, not {self.audio_track!r}"
            )
        if self.bidirectional and self.audio_track != "inbound":
            raise ValueError("Plivo requires audio_track='inbound' when bidirectional=True")
        if not isinstance(self.stream_timeout, int) or self.stream_timeout <= 0:
            raise ValueError(
                f"stream_timeout must be a positive int of seconds, not {self.stream_timeout!r}"
            )
        if self.status_callback_method not in ("GET", "POST"):
            raise ValueError(
                f"status_callback_method must be GET or POST, not {self.status_callback_method!r}"
            )
        if not 60 <= self.noise_cancellation_level <= 100:
            raise ValueError(
                f"noise_cancellation_level must be 60-100, not {self.noise_cancellation_level!r}"
            )
        for key, value in self.extra_headers.items():
            if not _HEADER_KEY_RE.match(key) or not _HEADER_VALUE_RE.match(str(value)):
                raise ValueError(
                    f"extra_headers {key!r}={value!r}: Plivo allows alphanumeric keys and "
                    "values only"
                )
        if len(self.extra_headers_text.encode()) > 512:
            raise ValueError("extra_headers exceed Plivo's 512-byte limit")

    @property
    def extra_headers_text(self) -> str:
        """``extra_headers`` in Plivo's ``k=v;k=v`` form (empty when there are none)."""
        return ";".join(f"{k}={v}" for k, v in self.extra_headers.items())


@attrs.frozen
class Flow:
    """A declared call flow: where Plivo finds it and how to stream to it.

    Made by :func:`flow`; a module holding one is all the loader needs (there is no global
    registry). Calling a ``Flow`` calls its handler.

    Attributes:
        path: the answer URL path, e.g. ``/support``. The stream WebSocket is ``path/stream``,
            status callbacks ``path/status``.
        handler: the ``async def handler(call)`` that runs once per call.
        stream: the ``<Stream>`` settings.
        tts: the flow's text-to-speech engine (``@flow(tts=…)``); ``None`` for the server's
            (``callflow serve --tts``, else ``"auto"``).
        stt: the flow's speech recognizer (``@flow(stt=…)``); ``None`` for the offline one.
    """

    path: str
    handler: FlowHandler
    stream: StreamSettings
    tts: TtsChoice | None = attrs.field(default=None, eq=False, kw_only=True)
    stt: Stt | None = attrs.field(default=None, eq=False, kw_only=True)

    @property
    def name(self) -> str:
        """The handler's module and name, for logs (``support.support`` for a flow in
        ``flows/support.py`` loaded by :func:`~callflow.load_flows`)."""
        module = self.handler.__module__
        if module.startswith(LOADER_PACKAGE_PREFIX):
            module = module.partition(".")[2]
        return f"{module}.{self.handler.__qualname__}"

    @property
    def format(self) -> Format:
        """The audio format, both ways."""
        return self.stream.format

    @property
    def stream_path(self) -> str:
        """The stream WebSocket's path: ``<path>/stream`` (``/stream`` for the root flow)."""
        return _join(self.path, "stream")

    @property
    def status_path(self) -> str:
        """The status-callback path: ``<path>/status``."""
        return _join(self.path, "status")

    @property
    def machine_path(self) -> str:
        """The machine-detection callback path: ``<path>/machine`` (give it to Plivo as
        ``machine_detection_url`` when placing an outbound call)."""
        return _join(self.path, "machine")

    async def __call__(self, call: Call) -> None:
        await self.handler(call)


def _join(path: str, suffix: str) -> str:
    return f"{path.rstrip('/')}/{suffix}"


def flow(
    path: str,
    *,
    format: Format,
    bidirectional: bool = True,
    audio_track: AudioTrack = "inbound",
    stream_timeout: int = 86400,
    status_callback_url: str | None = None,
    status_callback_method: HttpMethod = "POST",
    extra_headers: Mapping[str, str] | None = None,
    keep_call_alive: bool = True,
    noise_cancellation: bool = False,
    noise_cancellation_level: int = 85,
    tts: TtsSpec | None = None,
    stt: Stt | None = None,
) -> Callable[[FlowHandler], Flow]:
    """Declare ``async def handler(call: Call) -> None`` as the call flow answering at ``path``.

    The keywords are the ``<Stream>`` XML attributes with Plivo's meanings (PROTOCOL.md §5);
    see :class:`StreamSettings`; and the flow's voice: ``tts`` (an engine from
    :mod:`callflow.voice`, or a name: ``"piper"``, ``"piper:/path/voice.onnx"``,
    ``"espeak-ng"``, ``"espeak-ng:en-gb"``, ``"auto"``; default: the server's) and ``stt`` (a
    recognizer; default: the offline :class:`~callflow.voice.SoundSwallower`). Everything is
    checked here, at decoration time (a named engine that is not installed raises now)::

        @flow("/support", format=Format.MULAW_8K)
        async def support(call: Call) -> None:
            await call.say(PROMPTS.welcome)

    Raises:
        TypeError: ``format`` is not a :class:`Format`, or the decorated object is not an
            ``async def`` taking exactly one positional parameter (the :class:`Call`).
        ValueError: a malformed ``path``, a setting outside what Plivo accepts, or an unknown
            engine name.
        callflow.voice.TtsUnavailable: ``tts`` names an engine that is not installed (the
            message names what to install).
    """
    if not isinstance(path, str) or not _PATH_RE.match(path) or "//" in path:
        raise ValueError(f"flow path must look like '/name' (letters, digits, ._~-/), not {path!r}")
    if path != "/" and path.endswith("/"):
        raise ValueError(f"flow path {path!r} must not end with '/'")
    if any(path.endswith(suffix) for suffix in _RESERVED_SUFFIXES):
        raise ValueError(
            f"flow path {path!r} ends with a suffix callflow reserves for the flow's own routes"
        )
    settings = StreamSettings(
        format=format,
        bidirectional=bidirectional,
        audio_track=audio_track,
        stream_timeout=stream_timeout,
        status_callback_url=status_callback_url,
        status_callback_method=status_callback_method,
        extra_headers=dict(extra_headers or {}),
        keep_call_alive=keep_call_alive,
        noise_cancellation=noise_cancellation,
        noise_cancellation_level=noise_cancellation_level,
    )

    choice = None if tts is None else tts if isinstance(tts, TtsChoice) else TtsChoice(tts)
    if stt is not None and not isinstance(stt, Stt):
        raise TypeError(f"stt must be a recognizer (callflow.voice.Stt), not {stt!r}")

    def decorate(handler: FlowHandler) -> Flow:
        _check_handler(handler, path)
        return Flow(path=path, handler=handler, stream=settings, tts=choice, stt=stt)

    return decorate


def _check_handler(handler: object, path: str) -> None:
    if isinstance(handler, Flow):
        raise TypeError(f"@flow({path!r}) applied twice")
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(
            f"@flow({path!r}) must decorate an 'async def' taking a Call, not {handler!r}"
        )
    params = list(inspect.signature(handler).parameters.values())
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    others_required = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(positional) != 1 or others_required:
        raise TypeError(
            f"@flow({path!r}): {handler.__qualname__} must take exactly one parameter, the Call"
        )
    from callflow.runtime import Call

    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # unresolvable annotations: nothing more to check
        return
    hint = hints.get(positional[0].name)
    if isinstance(hint, type) and not issubclass(Call, hint):
        raise TypeError(
            f"@flow({path!r}): {handler.__qualname__}'s parameter is annotated {hint.__name__}, "
            "but the flow is called with a callflow.Call"
        )
