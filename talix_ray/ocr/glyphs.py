"""Restoring currency symbols that a recognizer's alphabet lacks.

RapidOCR's bundled PP-OCRv4 recognizer has no ``€`` or ``£`` in its dictionary: it drops them
(``"8,00 €"`` reads ``"8,00 "``) or reads a look-alike (``"£5"`` reads ``"f5"``). The line's
box still covers the symbol, so this module finds, on each line with a digit, the ink that no
recognized character explains (or a look-alike letter next to a digit), and matches its shape
against the symbols and their look-alikes rendered from the fonts found on the machine.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SIZE = 24  # templates and candidates are compared as SIZE x SIZE images
SYMBOLS = ("€", "£")
LOOKALIKES = ("E", "C", "e", "c", "f", "L", "t", "l", "1", "(", "F")
_MIN_SCORE = 0.62
_MARGIN = 0.02


@dataclass(frozen=True)
class Template:
    char: str
    vector: np.ndarray
    aspect: float


def font_files() -> list[str]:
    """Regular fonts to render templates from: matplotlib's DejaVu and STIX fonts when
    matplotlib is installed, and the DejaVu/Liberation/Noto fonts of the system."""
    found: list[str] = []
    try:
        import matplotlib

        ttf = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
        found += [os.path.join(ttf, f) for f in (
            "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
            "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
            "STIXGeneralBol.ttf")]
    except ImportError:
        pass
    for pattern in ("/usr/share/fonts/truetype/liberation*/Liberation*-Regular.ttf",
                    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans*.ttf"):
        found += sorted(glob.glob(pattern))[:6]
    seen: set[str] = set()
    out = []
    for path in found:
        name = os.path.basename(path)
        if os.path.exists(path) and name not in seen:
            seen.add(name)
            out.append(path)
    return out


def normalize(ink: np.ndarray) -> tuple[np.ndarray, float] | None:
    """A binary glyph (True = ink) → a zero-mean unit vector of its shape, and its aspect."""
    import cv2

    ys, xs = np.nonzero(ink)
    if len(xs) < 4:
        return None
    glyph = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    h, w = glyph.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = glyph
    small = cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 1.0)
    vec = small.ravel() - small.mean()
    norm = float(np.linalg.norm(vec))
    if norm == 0:
        return None
    return vec / norm, w / h


@functools.lru_cache(maxsize=1)
def templates() -> tuple[Template, ...]:
    """The symbols and their look-alikes, rendered once per process from :func:`font_files`."""
    from PIL import Image, ImageDraw, ImageFont

    out = []
    for path in font_files():
        try:
            font = ImageFont.truetype(path, 64)
        except OSError:
            continue
        for char in SYMBOLS + LOOKALIKES:
            im = Image.new("L", (120, 120), 0)
            ImageDraw.Draw(im).text((20, 10), char, font=font, fill=255)
            got = normalize(np.asarray(im) > 127)
            if got is not None:
                out.append(Template(char, got[0], got[1]))
    return tuple(out)


_LOWERCASE = frozenset("ce")  # x-height letters: shorter than a symbol or a digit


def classify(ink: np.ndarray, full_height: bool = False) -> tuple[str, float] | None:
    """The best-matching symbol for a glyph and its score, ``None`` if a look-alike (or
    nothing) matches better. ``full_height``: the glyph is as tall as the line's digits, so
    it is no x-height letter."""
    got = normalize(ink)
    table = templates()
    if got is None or not table:
        return None
    vec, aspect = got
    best: dict[str, float] = {}
    for t in table:
        if full_height and t.char in _LOWERCASE:
            continue
        score = float(vec @ t.vector) - 0.25 * abs(np.log(aspect / t.aspect))
        if score > best.get(t.char, -9.0):
            best[t.char] = score
    if best.get("€", -9.0) >= max(best.values()) - 0.1:  # € or a C: the bars tell
        if bar_width(ink) >= 0.55:
            best = {c: v for c, v in best.items() if c not in ("C", "c")}
        else:
            best.pop("€")
    char = max(best, key=lambda c: best[c])
    if char not in SYMBOLS or best[char] < _MIN_SCORE:
        return None
    rival = max(v for c, v in best.items() if c != char)
    if best[char] - rival < _MARGIN:
        return None
    return char, best[char]


def bar_width(ink: np.ndarray) -> float:
    """The longest horizontal run of ink across the middle of a glyph, as a share of its
    width: the bars of a ``€`` span most of it (0.7-0.9), a ``C`` has none (0.2-0.35)."""
    ys, xs = np.nonzero(ink)
    if not len(xs):
        return 0.0
    glyph = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = glyph.shape
    longest = 0
    for row in glyph[int(h * 0.3):int(h * 0.72) + 1]:
        padded = np.concatenate(([False], row, [False])).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        if len(edges):
            longest = max(longest, int((edges[1::2] - edges[::2]).max()))
    return longest / int(w)


def line_crop(gray: np.ndarray, points: Sequence[Sequence[float]]) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """The line's quadrilateral warped to an upright rectangle, and the transform used."""
    import cv2

    pts = np.asarray(points, np.float32)
    width = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    height = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    m = cv2.getPerspectiveTransform(pts, dst)
    crop = cv2.warpPerspective(gray, m, (max(width, 1), max(height, 1)),
                               borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return crop, m


def _blobs(ink: np.ndarray) -> list[tuple[int, int]]:
    """Column runs of ink: ``(x0, x1)`` with x1 exclusive."""
    cols = np.asarray(ink.any(axis=0))
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for x, on in enumerate(cols):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    if start is not None:
        runs.append((start, len(cols)))
    return runs


def restore_symbols(gray: np.ndarray, points: Sequence[Sequence[float]],
                    chars: Sequence[str], char_boxes: Sequence[Sequence[Sequence[float]]]
                    ) -> str | None:
    """The line's text with missing or misread currency symbols restored; ``None`` when
    nothing changed. ``chars`` and ``char_boxes`` are the recognizer's characters and
    their boxes in page pixels."""
    import cv2

    if not any(c.isdigit() for c in chars) or len(chars) != len(char_boxes):
        return None
    crop, m = line_crop(gray, points)
    if crop.size == 0 or crop.std() < 8:
        return None
    _, binary = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ink = binary > 0
    centers = []  # each character's middle, in the upright crop
    for box in char_boxes:
        c = np.asarray(box, np.float32).mean(axis=0)
        p = m @ np.array([c[0], c[1], 1.0])
        centers.append(float(p[0] / p[2]))
    blobs = []  # (x0, x1, top, bottom, the characters whose middle falls in it)
    for x0, x1 in _blobs(ink):
        ys = np.nonzero(ink[:, x0:x1].any(axis=1))[0]
        inside = [i for i, x in enumerate(centers)
                  if x0 - 1 <= x < x1 + 1 and chars[i].strip()]
        blobs.append((x0, x1, int(ys.min()), int(ys.max()) + 1, inside))
    digits = [b[3] - b[2] for b in blobs if b[4] and all(chars[i].isdigit() for i in b[4])]
    if not digits:
        return None
    tall = max(digits)
    placed: list[tuple[float, str]] = list(zip(centers, chars, strict=True))
    changed = False
    for x0, x1, top, bottom, inside in blobs:
        suspect = (len(inside) == 1 and chars[inside[0]] in LOOKALIKES
                   and _next_to_digit(chars, inside[0]))
        height = bottom - top
        if (inside and not suspect) or not 0.6 * tall <= height <= 1.5 * tall:
            continue
        got = classify(ink[top:bottom, x0:x1], full_height=height >= 0.85 * tall)
        if got is None:
            continue
        if suspect:
            placed[inside[0]] = (placed[inside[0]][0], got[0])
        else:
            placed.append(((x0 + x1) / 2, got[0]))
        changed = True
    if not changed:
        return None
    placed.sort(key=lambda item: item[0])
    return " ".join("".join(ch for _, ch in placed).split())


def _next_to_digit(chars: Sequence[str], i: int) -> bool:
    """Whether character ``i`` comes right before a digit (``f12.50``, ``Totalf12.50``: OCR
    drops spaces) or stands alone next to one (``12.50 E``), not the ``e`` of ``Cafe 12``."""
    def touching(step: int) -> str:
        j = i + step
        return chars[j] if 0 <= j < len(chars) else ""

    if touching(1).isdigit():
        return True
    if touching(-1).isalpha() or touching(1).isalpha():
        return False

    def neighbour(step: int) -> str:
        j = i + step
        while 0 <= j < len(chars) and chars[j] == " ":
            j += step
        return chars[j] if 0 <= j < len(chars) else ""

    return neighbour(-1).isdigit() or neighbour(1).isdigit()
