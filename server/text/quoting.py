"""Quoting what a client sent in an error message, for every front door: never a megabyte
echoed back, never a control character that rewrites a terminal, never a string that the
answer's encoding cannot carry. Every error that names a client's string, value or field
goes through these."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Client-supplied strings are quoted in error messages up to this many characters: enough
# to recognise a typo, never a megabyte echoed back.
USER_STRING_CHARS = 64


def user_string(value: str, limit: int = USER_STRING_CHARS) -> str:
    """A client's string as an error message may quote it: in quotes, with control and
    non-printable characters escaped (repr), cut to `limit` characters. Every front door
    quotes what a client sent through this helper (or `user_value`, `field_path`)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def user_value(value: object, limit: int = USER_STRING_CHARS) -> str:
    """Any JSON value a client sent, as an error message may quote it: a string as
    `user_string` quotes it, a number or a literal as JSON writes it (cut), an array or an
    object by its kind alone."""
    if isinstance(value, str):
        return user_string(value, limit)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def field_path(parts: Sequence[object]) -> str:
    """A field's dotted path, as an error message names it: a part a client chose (an
    unknown key, a dictionary key) that is not a short plain name is quoted by `user_string`."""
    return ".".join(
        str(part) if isinstance(part, int) or _PLAIN_NAME.fullmatch(str(part)) else user_string(str(part))
        for part in parts
    )
