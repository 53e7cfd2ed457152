"""What every OCR engine reads and returns, and the errors and limits they share: the
result models, the supported content types and how a file's kind is told. Nothing here
imports an imaging library."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..model.errors import ValidationError

Point = tuple[float, float]
Reason = Literal["unsupported", "corrupt", "unreadable", "too_large"]

#: The kinds of file an engine reads, by their canonical content type.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff")
PDF_TYPE = "application/pdf"
SUPPORTED_TYPES = (*IMAGE_TYPES, PDF_TYPE, "text/plain")
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
            "image/tif": "image/tiff", "application/x-pdf": PDF_TYPE}
_GENERIC = {"application/octet-stream", "binary/octet-stream", "application/binary", ""}


class UnreadableDocument(ValidationError):
    """The file cannot be read: ``reason`` is ``unsupported`` (a kind no engine reads),
    ``corrupt`` (damaged or not what its type says), ``unreadable`` (no text found) or
    ``too_large`` (over a limit). The message is fit to show to the person who sent it."""

    code = "unreadable_document"

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.details["reason"] = reason

    @property
    def reason(self) -> Reason:
        """Why the file cannot be read (kept in ``details``, so that an error rebuilt from its
        problem body, as a replayed durable step is, still has it)."""
        # a Reason: set by __init__, or rebuilt from the problem body this class wrote
        return self.details.get("reason", "unreadable")  # type: ignore[no-any-return]


class OcrLimits(BaseModel):
    """Bounds on what one read may cost; a file over any of them is refused, not truncated."""

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_pages: int = Field(default=20, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0, description="per decoded page")
    max_side: int = Field(default=2400, gt=0,
                          description="pages are scaled down to this longest side before OCR")
    render_dpi: int = Field(default=200, gt=0, description="PDF pages without text layer")
    max_text_chars: int = Field(default=1_000_000, gt=0)


class OcrLine(BaseModel):
    """One line of text: its words, where it is on its page and how sure the engine is."""

    text: str
    points: tuple[Point, Point, Point, Point] = Field(
        description="the corners, clockwise from top-left, in page pixels (PDF: points)")
    confidence: float = Field(ge=0, le=1)
    page: int = Field(default=0, ge=0)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The axis-aligned box ``(x0, y0, x1, y1)`` around the line."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    @classmethod
    def from_box(cls, text: str, x0: float, y0: float, x1: float, y1: float,
                 confidence: float, page: int = 0) -> OcrLine:
        """A line from an axis-aligned box."""
        return cls(text=text, points=((x0, y0), (x1, y0), (x1, y1), (x0, y1)),
                   confidence=confidence, page=page)


class OcrPage(BaseModel):
    """A page read: its size and how its text was obtained."""

    width: float
    height: float
    source: Literal["ocr", "text-layer", "text"]


class OcrResult(BaseModel):
    """What an engine read from one file."""

    engine: str
    content_type: str
    pages: list[OcrPage]
    lines: list[OcrLine]
    timings: dict[str, float] = Field(default_factory=dict, description="seconds by stage")

    @property
    def page_count(self) -> int:
        """How many pages the file had."""
        return len(self.pages)

    @property
    def text(self) -> str:
        """The lines in reading order, one per line."""
        return "\n".join(line.text for line in self.lines)


def canonical_type(content_type: str) -> str:
    """``"Image/JPG; q=1"`` → ``"image/jpeg"``."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff(content: bytes) -> str | None:
    """The content type the first bytes announce, ``None`` when unknown."""
    head = content[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if content[:1024].lstrip().startswith(b"%PDF-"):
        return PDF_TYPE
    return None


def resolve_type(content: bytes, content_type: str) -> str:
    """The kind of file to read: the declared type, checked against the file's first bytes."""
    declared = canonical_type(content_type)
    sniffed = sniff(content)
    if declared.startswith("text/"):
        if declared != "text/plain":
            raise UnreadableDocument("unsupported", f"{declared} documents are not supported; "
                                     "send plain text, an image (PNG, JPEG, WebP, TIFF) or PDF")
        if sniffed is not None:  # an image or PDF sent as text: read it for what it is
            return sniffed
        return declared
    if declared in _GENERIC:
        if sniffed is None:
            raise UnreadableDocument("unsupported", "the file's type is not recognised; send "
                                     "plain text, an image (PNG, JPEG, WebP, TIFF) or PDF")
        return sniffed
    if declared not in SUPPORTED_TYPES:
        raise UnreadableDocument("unsupported", f"{declared} documents are not supported; "
                                 "send plain text, an image (PNG, JPEG, WebP, TIFF) or PDF")
    if sniffed is None:
        raise UnreadableDocument("corrupt", f"the file is not a valid {declared} (damaged, or "
                                 "not what its type says)")
    return sniffed  # a PNG labelled image/jpeg is still a PNG
