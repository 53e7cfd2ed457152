"""The OCR engine base class.

An engine turns a file (bytes and a content type) into lines of text with their boxes and
confidences. :class:`OcrEngine` does the parts common to every engine — telling the file's
kind, bounding its size, reading a PDF's text layer, splitting a TIFF into pages, taking plain
text as it is — and hands each page image to the engine's :meth:`OcrEngine.read_image`.
The imaging libraries (Pillow, pypdfium2) load when a file of their kind is read.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .base import PDF_TYPE, OcrLimits, OcrLine, OcrPage, OcrResult, UnreadableDocument, resolve_type
from .images import decode_pages
from .pdf import read_pdf
from .text import read_text

if TYPE_CHECKING:
    from PIL.Image import Image


class OcrEngine(ABC):
    """Reads files into lines of text with boxes and confidences. Subclass for a new engine:
    implement :meth:`read_image` (one page image → lines); the rest is shared."""

    #: The engine's name, recorded with every result.
    name: str = "ocr"

    def __init__(self, limits: OcrLimits | None = None) -> None:
        self.limits = limits or OcrLimits()

    @abstractmethod
    def read_image(self, image: Image, page: int) -> list[OcrLine]:
        """The lines of one page image (RGB, at most ``limits.max_side`` on its longest side),
        their boxes in that image's pixels."""

    def read(self, content: bytes, content_type: str) -> OcrResult:
        """Read a file. Raises :class:`UnreadableDocument` for a file that cannot be read."""
        started = time.perf_counter()
        if len(content) > self.limits.max_bytes:
            raise UnreadableDocument("too_large", f"the file is larger than "
                                     f"{self.limits.max_bytes} bytes")
        if not content:
            raise UnreadableDocument("corrupt", "the file is empty")
        kind = resolve_type(content, content_type)
        timings: dict[str, float] = {}
        if kind == "text/plain":
            pages, lines = read_text(content, self.limits)
        elif kind == PDF_TYPE:
            pages, lines = read_pdf(content, self.limits, self._ocr_pages(timings))
        else:
            t0 = time.perf_counter()
            images = decode_pages(content, kind, self.limits)
            timings["decode"] = time.perf_counter() - t0
            pages = [OcrPage(width=im.width, height=im.height, source="ocr") for im in images]
            lines = self._ocr_pages(timings)(images, 0)
        timings["total"] = time.perf_counter() - started
        engine = self.name if any(p.source == "ocr" for p in pages) else pages[0].source
        return OcrResult(engine=engine, content_type=kind, pages=pages, lines=lines,
                         timings={k: round(v, 4) for k, v in timings.items()})

    def _ocr_pages(self, timings: dict[str, float]) -> Any:
        def run(images: list[Image], first_page: int) -> list[OcrLine]:
            t0 = time.perf_counter()
            lines = [line for i, im in enumerate(images)
                     for line in self.read_image(im, first_page + i)]
            timings["ocr"] = timings.get("ocr", 0.0) + time.perf_counter() - t0
            return lines

        return run


__all__ = ["OcrEngine"]
