"""Plain text read as it is: one line per line, laid out on a notional page."""

from __future__ import annotations

from .base import OcrLimits, OcrLine, OcrPage, UnreadableDocument

#: The notional size of a character of plain text, so that geometry works on text too.
CHAR_WIDTH = 10.0
LINE_HEIGHT = 20.0


def read_text(content: bytes, limits: OcrLimits) -> tuple[list[OcrPage], list[OcrLine]]:
    """The non-empty lines of a UTF-8 (or Latin-1) text, each with a box on a monospaced grid."""
    if b"\x00" in content:
        raise UnreadableDocument("corrupt", "the file is not text (it contains NUL bytes)")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = content.decode("latin-1")
    if len(text) > limits.max_text_chars:
        raise UnreadableDocument("too_large", f"the text is longer than "
                                 f"{limits.max_text_chars} characters")
    lines: list[OcrLine] = []
    rows = text.splitlines()
    width = 0.0
    for row, raw in enumerate(rows):
        raw = raw.expandtabs(8).rstrip()
        stripped = raw.lstrip()
        if not stripped:
            continue
        x0 = (len(raw) - len(stripped)) * CHAR_WIDTH
        x1 = len(raw) * CHAR_WIDTH
        width = max(width, x1)
        lines.append(OcrLine.from_box(stripped, x0, row * LINE_HEIGHT, x1,
                                      row * LINE_HEIGHT + LINE_HEIGHT * 0.8, 1.0))
    if not lines:
        raise UnreadableDocument("unreadable", "the text is empty")
    return [OcrPage(width=width, height=len(rows) * LINE_HEIGHT, source="text")], lines
