"""Plivo's audio-stream wire protocol, sans-IO (PROTOCOL.md §2-§4). Imports no trio."""

from callflow.protocol._format import Format

__all__ = ["Format"]
