"""PDF: each page's text layer with its boxes when it has one, else the page rendered and read."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .base import OcrLimits, OcrLine, OcrPage, Reason, UnreadableDocument
from .images import fit

if TYPE_CHECKING:
    from PIL.Image import Image

#: A page with fewer visible characters in its text layer is read as an image.
MIN_TEXT_CHARS = 8

OcrPages = Callable[["list[Image]", int], list[OcrLine]]


class _TextPage(Protocol):
    """What is read of a pypdfium2 ``PdfTextPage`` (pypdfium2 ships no types)."""

    def count_rects(self) -> int: ...
    def get_rect(self, index: int) -> tuple[float, float, float, float]: ...
    def get_text_bounded(self, left: float, bottom: float, right: float, top: float) -> str: ...
    def close(self) -> None: ...


class _Bitmap(Protocol):
    """What is used of a pypdfium2 ``PdfBitmap``."""

    def to_pil(self) -> Image: ...
    def close(self) -> None: ...


class _Page(Protocol):
    """What is used of a pypdfium2 ``PdfPage``."""

    def get_textpage(self) -> _TextPage: ...
    def render(self, *, scale: float) -> _Bitmap: ...


def read_pdf(content: bytes, limits: OcrLimits,
             ocr: OcrPages) -> tuple[list[OcrPage], list[OcrLine]]:
    """Pages and lines of a PDF. ``ocr`` reads the pages that have no text layer."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(content)
    except pdfium.PdfiumError as exc:
        reason: Reason = "unreadable" if "password" in str(exc).lower() else "corrupt"
        what = ("the PDF is encrypted" if reason == "unreadable"
                else "the PDF is damaged and cannot be opened")
        raise UnreadableDocument(reason, what) from exc
    try:
        count = len(pdf)
        if count == 0:
            raise UnreadableDocument("unreadable", "the PDF has no pages")
        if count > limits.max_pages:
            raise UnreadableDocument("too_large", f"the PDF has {count} pages; at most "
                                     f"{limits.max_pages} are read")
        pages: list[OcrPage] = []
        lines: list[OcrLine] = []
        for index in range(count):
            page = pdf[index]
            try:
                width, height = page.get_size()
                layer = _text_layer(page, index, height)
                if sum(len(ln.text.strip()) for ln in layer) >= MIN_TEXT_CHARS:
                    pages.append(OcrPage(width=width, height=height, source="text-layer"))
                    lines.extend(layer)
                    continue
                image = _render(page, width, height, limits)
                pages.append(OcrPage(width=image.width, height=image.height, source="ocr"))
                lines.extend(ocr([image], index))
            finally:
                page.close()
        return pages, lines
    except pdfium.PdfiumError as exc:
        raise UnreadableDocument("corrupt", "the PDF is damaged and cannot be read") from exc
    finally:
        pdf.close()


def _text_layer(page: _Page, index: int, height: float) -> list[OcrLine]:
    """The text layer as lines: pdfium's text rectangles (runs on one baseline), top-left
    origin like an image."""
    textpage = page.get_textpage()
    try:
        lines = []
        for i in range(textpage.count_rects()):
            left, bottom, right, top = textpage.get_rect(i)
            text = " ".join(textpage.get_text_bounded(left, bottom, right, top).split())
            if text:
                lines.append(OcrLine.from_box(text, left, height - top, right, height - bottom,
                                              1.0, page=index))
        lines.sort(key=lambda ln: (round(ln.box[1]), ln.box[0]))
        return lines
    finally:
        textpage.close()


def _render(page: _Page, width: float, height: float, limits: OcrLimits) -> Image:
    """The page as an RGB image at ``render_dpi``, within ``max_pixels`` and ``max_side``."""
    scale = limits.render_dpi / 72
    scale = min(scale, limits.max_side / max(width, height, 1))
    if width * height * scale * scale > limits.max_pixels:
        scale = (limits.max_pixels / (width * height)) ** 0.5
    bitmap = page.render(scale=scale)
    try:
        return fit(bitmap.to_pil(), limits.max_side)
    finally:
        bitmap.close()
