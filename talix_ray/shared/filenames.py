"""File names taken from outside (a URL's last path segment, an upload) made safe to store in
an event and to show: one path component, printable, bounded."""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 200

# control (Cc: CR, LF, NUL, ESC…), format (Cf: bidi overrides and isolates, zero-width
# characters, BOM), line/paragraph separators, surrogates, private use, unassigned
_DROPPED = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
_SEPARATORS = {"/", "\\", ":"}  # path separators here, on Windows and classic macOS


def safe_file_name(raw: str | None, *, max_chars: int = MAX_NAME_CHARS) -> str | None:
    """``raw`` as one safe path component, or ``None`` when nothing usable is left.

    Unicode is normalized (NFC); control, format (bidi overrides, zero-width) and separator
    characters are dropped; path separators become ``_``; whitespace is collapsed to single
    spaces; leading dots and spaces go (no ``..``, no hidden files); the name is cut to
    ``max_chars`` characters, keeping a short extension.
    """
    if raw is None:
        return None
    text = unicodedata.normalize("NFC", str(raw))
    out = []
    for ch in text:
        if ch in _SEPARATORS:
            out.append("_")
        elif unicodedata.category(ch) in _DROPPED:
            continue
        elif ch.isspace():
            out.append(" ")
        else:
            out.append(ch)
    name = " ".join("".join(out).split()).lstrip(". ").rstrip(" ")
    if not name or set(name) <= {"_", "."}:
        return None
    if len(name) > max_chars:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[:max_chars - len(ext) - 1].rstrip(" ") + "." + ext
        else:
            name = name[:max_chars].rstrip(" ")
    return name


def is_safe_file_name(name: str, *, max_chars: int = MAX_NAME_CHARS) -> bool:
    """Whether ``name`` is already what :func:`safe_file_name` makes of it."""
    return safe_file_name(name, max_chars=max_chars) == name


__all__ = ["MAX_NAME_CHARS", "is_safe_file_name", "safe_file_name"]
