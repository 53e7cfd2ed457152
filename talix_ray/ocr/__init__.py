"""OCR as a shared service: files (images, PDF, text) to lines with boxes and confidences.

``get_engine()`` returns the process's engine (RapidOCR unless another is asked for), created
once and reused. Engines need the ``ocr`` extra (``pip install 'talix-ray[ocr]'``); importing
this package does not load them.
"""

from __future__ import annotations

import threading
from typing import Any

from .base import (
    IMAGE_TYPES,
    PDF_TYPE,
    SUPPORTED_TYPES,
    OcrLimits,
    OcrLine,
    OcrPage,
    OcrResult,
    UnreadableDocument,
    canonical_type,
    resolve_type,
    sniff,
)
from .engine import OcrEngine

_engines: dict[tuple[str, tuple[tuple[str, Any], ...]], OcrEngine] = {}
_lock = threading.Lock()


def engine_names() -> list[str]:
    """The engines that can run here: ``rapidocr``, and ``tesseract`` when its binary exists."""
    from .tesseract import tesseract_binary

    return ["rapidocr"] + (["tesseract"] if tesseract_binary() else [])


def create_engine(name: str = "rapidocr", **options: Any) -> OcrEngine:
    """A new engine by name (``rapidocr`` or ``tesseract``), with engine options."""
    if name == "rapidocr":
        from .rapid import RapidOcrEngine

        return RapidOcrEngine(**options)
    if name == "tesseract":
        from .tesseract import TesseractEngine

        return TesseractEngine(**options)
    raise ValueError(f"unknown OCR engine {name!r}; known: rapidocr, tesseract")


def get_engine(name: str = "rapidocr", **options: Any) -> OcrEngine:
    """The process's engine of that name and options: created on first use, then reused (the
    models load once per process)."""
    key = (name, tuple(sorted(options.items())))
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(name, **options)
        return engine


__all__ = [
    "IMAGE_TYPES", "PDF_TYPE", "SUPPORTED_TYPES", "OcrEngine", "OcrLimits", "OcrLine", "OcrPage",
    "OcrResult", "UnreadableDocument", "canonical_type", "create_engine", "engine_names",
    "get_engine", "resolve_type", "sniff",
]
