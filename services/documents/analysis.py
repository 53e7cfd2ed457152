"""Reading documents: OCR (or plain text) into lines, and the fields of an expense out of them.

:class:`OcrAnalyzer` is the default: it reads images, PDFs and plain text with an OCR engine of
:mod:`talix_ray.ocr` (RapidOCR unless told otherwise) and extracts the fields from the lines
and their boxes (:mod:`.extraction`). A file it cannot read raises
:class:`~talix_ray.ocr.UnreadableDocument` with a reason.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from talix_ray.ocr import OcrEngine, OcrLimits, OcrResult, UnreadableDocument

from ..expenses import CreateExpense
from .extraction import ExtractedFields, extract_fields, parse_amount, parse_date
from .model import FieldConfidences, FieldValues, RecordAnalysis

#: The most text kept from a document: its events stay far below the journal's 1 MiB limit.
MAX_TEXT = 200_000

__all__ = ["Analysis", "DocumentAnalyzer", "ExpenseFields", "OcrAnalyzer", "TextAnalyzer",
           "UnreadableDocument", "extract_expense", "parse_amount", "parse_date"]


class ExpenseFields(BaseModel):
    """What a receipt says."""

    vendor: str | None
    date: dt.date | None
    amount: Decimal
    currency: str
    needs_review: bool = False
    confidence: float | None = None


class Analysis(BaseModel):
    """The outcome of analyzing one document."""

    text: str
    engine: str
    pages: int = 1
    timings: dict[str, float] = {}
    fields: ExtractedFields

    @property
    def is_expense(self) -> bool:
        """Whether the document is an expense with a total (so an expense can be created)."""
        return self.expense is not None

    @property
    def expense(self) -> ExpenseFields | None:
        """The expense's fields; a currency that was not found makes it one to review."""
        f = self.fields
        if not f.is_expense or f.total.value is None or f.total.value <= 0:
            return None
        return ExpenseFields(vendor=f.vendor.value, date=f.date.value, amount=f.total.value,
                             currency=f.currency.value or "EUR",
                             needs_review=f.needs_review or f.currency.value is None,
                             confidence=round(f.confidence, 3))

    def expense_input(self, document_id: str) -> CreateExpense:
        """The command input that creates this document's expense."""
        expense = self.expense
        assert expense is not None
        return CreateExpense(document_id=document_id, **expense.model_dump())

    def record(self) -> RecordAnalysis:
        """The command input that records this analysis on the document."""
        f = self.fields
        expense = self.expense
        return RecordAnalysis(
            text=self.text[:MAX_TEXT], is_expense=self.is_expense, engine=self.engine,
            pages=self.pages, timings=self.timings,
            needs_review=bool(expense and expense.needs_review),
            fields=FieldValues(vendor=f.vendor.value, date=f.date.value, total=f.total.value,
                               currency=f.currency.value) if f.is_expense else None,
            confidences=FieldConfidences(
                is_expense=f.expense_confidence, vendor=f.vendor.confidence,
                date=f.date.confidence, total=f.total.confidence,
                currency=f.currency.confidence))


class DocumentAnalyzer(ABC):
    """Turns a stored file into lines (:meth:`read`) and, for receipts, expense fields.
    Pluggable: register another with ``runtime.register(DocumentAnalyzer, impl)``."""

    @abstractmethod
    def read(self, content: bytes, content_type: str) -> OcrResult:
        """The file's lines; raises :class:`UnreadableDocument` for one it cannot read."""

    def analyze(self, content: bytes, content_type: str) -> Analysis:
        """Read the file and extract its fields."""
        result = self.read(content, content_type)
        if not any(line.text.strip() for line in result.lines):
            raise UnreadableDocument("unreadable", "no text was found in the document")
        return Analysis(text=result.text[:MAX_TEXT], engine=result.engine, pages=result.page_count,
                        timings=result.timings, fields=extract_fields(result))


class OcrAnalyzer(DocumentAnalyzer):
    """Images, PDFs and plain text through an OCR engine (``rapidocr`` by default). Holds only
    the engine's name and options, so it pickles small; each process loads the engine once
    (:func:`talix_ray.ocr.get_engine`)."""

    def __init__(self, engine: str = "rapidocr", limits: OcrLimits | None = None,
                 **options: Any) -> None:
        self.engine_name = engine
        self.options = {**options, **({"limits": limits} if limits is not None else {})}

    @property
    def engine(self) -> OcrEngine:
        """This process's engine."""
        from talix_ray.ocr import get_engine

        return get_engine(self.engine_name, **self.options)

    def read(self, content: bytes, content_type: str) -> OcrResult:
        return self.engine.read(content, content_type)


class TextAnalyzer(DocumentAnalyzer):
    """Reads plain-text documents (``text/plain``) only; other kinds are unsupported."""

    def read(self, content: bytes, content_type: str) -> OcrResult:
        from talix_ray.ocr.base import OcrResult, canonical_type
        from talix_ray.ocr.text import read_text

        if not canonical_type(content_type).startswith("text/"):
            raise UnreadableDocument("unsupported", f"cannot read {content_type} documents "
                                     "with the text analyzer")
        pages, lines = read_text(content, OcrLimits())
        return OcrResult(engine="text", content_type="text/plain", pages=pages, lines=lines)


def extract_expense(text: str) -> ExpenseFields | None:
    """Expense fields if ``text`` reads like a receipt with a total; ``None`` otherwise."""
    try:
        analysis = TextAnalyzer().analyze(text.encode(), "text/plain")
    except UnreadableDocument:
        return None
    return analysis.expense
