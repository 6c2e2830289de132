"""Registry of the output formats the speech endpoint can return.

This module is pure metadata (name -> media type / file extension) so that the
API layer can validate ``response_format`` and set ``Content-Type`` without
touching any codec library. How each format is actually produced lives in
:mod:`server.audio.encoders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from server.text.quoting import user_string


class UnknownFormatError(ValueError):
    """Raised for a format name that is not in the registry.

    A ``ValueError`` subclass so callers can map it to HTTP 400 generically;
    we never fall back silently to another format, because a client asking for
    e.g. ``"m4a"`` and receiving MP3 bytes would mis-decode them.
    """


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """What a client sees of an output format."""

    name: str
    media_type: str
    extension: str
    description: str = ""


_SPECS: Final = (
    FormatSpec("mp3", "audio/mpeg", "mp3", "MPEG-1/2 Layer III"),
    FormatSpec("opus", "audio/ogg", "opus", "Opus in an Ogg container"),
    FormatSpec("aac", "audio/aac", "aac", "AAC-LC in ADTS framing"),
    FormatSpec("flac", "audio/flac", "flac", "FLAC, 16-bit"),
    FormatSpec("wav", "audio/wav", "wav", "RIFF WAVE, 16-bit PCM"),
    FormatSpec(
        "pcm",
        "audio/pcm",
        "pcm",
        "raw signed 16-bit little-endian mono samples, no header",
    ),
    FormatSpec("ogg", "audio/ogg", "ogg", "Vorbis in an Ogg container"),
)

FORMATS: Final = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Read-only ``name -> FormatSpec`` mapping."""

SUPPORTED_FORMATS: Final[tuple[str, ...]] = tuple(spec.name for spec in _SPECS)


def get_format(name: str) -> FormatSpec:
    """Return the spec for ``name`` (case-insensitive, surrounding blanks ignored).

    Raises:
        UnknownFormatError: ``name`` is not one of :data:`SUPPORTED_FORMATS`.
    """
    spec = FORMATS.get(name.strip().lower()) if isinstance(name, str) else None
    if spec is None:
        supported = ", ".join(SUPPORTED_FORMATS)
        shown = user_string(name) if isinstance(name, str) else type(name).__name__
        raise UnknownFormatError(f"unsupported audio format {shown}; supported: {supported}")
    return spec
