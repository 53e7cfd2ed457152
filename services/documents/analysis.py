"""Reading documents: text out of a file, and the fields of an expense out of the text."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from abc import ABC, abstractmethod
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel

from talix_ray import ValidationError

from ..expenses import CreateExpense


class ExpenseFields(BaseModel):
    """What a receipt says."""

    vendor: str | None
    date: dt.date | None
    amount: Decimal
    currency: str


class Analysis(BaseModel):
    """The outcome of analyzing one document."""

    text: str
    engine: str
    expense: ExpenseFields | None = None

    @property
    def is_expense(self) -> bool:
        return self.expense is not None

    def expense_input(self, document_id: str) -> CreateExpense:
        assert self.expense is not None
        return CreateExpense(document_id=document_id, **self.expense.model_dump())


class DocumentAnalyzer(ABC):
    """Turns a stored file into text and, for receipts, expense fields. Pluggable."""

    @abstractmethod
    def read_text(self, content: bytes, content_type: str) -> tuple[str, str]:
        """The document's text and the name of the engine that read it."""

    def analyze(self, content: bytes, content_type: str) -> Analysis:
        text, engine = self.read_text(content, content_type)
        return Analysis(text=text, engine=engine, expense=extract_expense(text))


class TextAnalyzer(DocumentAnalyzer):
    """Reads plain-text documents (``text/*``); other types are refused."""

    def read_text(self, content: bytes, content_type: str) -> tuple[str, str]:
        if not content_type.startswith("text/"):
            raise ValidationError(f"cannot read {content_type} documents with the text analyzer")
        return content.decode("utf-8", errors="replace"), "text"


# -- field extraction ---------------------------------------------------------------------------
_TOTAL = re.compile(r"\b(grand\s+total|total(?:\s+due)?|amount\s+due|balance\s+due|to\s+pay|"
                    r"summe|gesamt(?:betrag)?|total\s+ttc|montant)\b", re.I)
_RECEIPT = re.compile(r"\b(receipt|invoice|rechnung|quittung|facture|bill|total)\b", re.I)
_AMOUNT = re.compile(r"(?<![\d.,])(\d{1,3}(?:[.,\s]\d{3})+|\d+)(?:([.,])(\d{2}))?(?![\d])")
_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CODES = re.compile(r"\b(EUR|USD|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN|CZK|INR)\b")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NUM_DATE = re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4}|\d{2})\b")
_TEXT_DATE = re.compile(r"\b(\d{1,2})\.?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
_TEXT_DATE_US = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})\b")


def parse_amount(text: str) -> Decimal | None:
    """The last money amount in ``text``: ``1,234.56``, ``1.234,56``, ``12,50``, ``12``."""
    found = None
    for m in _AMOUNT.finditer(text):
        whole, _sep, cents = m.groups()
        digits = re.sub(r"[.,\s]", "", whole)
        try:
            value = Decimal(digits) + (Decimal(cents) / 100 if cents else Decimal(0))
        except InvalidOperation:
            continue
        found = value.quantize(Decimal("0.01"))
    return found


def parse_currency(text: str) -> str | None:
    """An ISO code or currency symbol in ``text``."""
    if m := _CODES.search(text):
        return m.group(1)
    for symbol, code in _SYMBOLS.items():
        if symbol in text:
            return code
    return None


def parse_date(text: str) -> dt.date | None:
    """The first date in ``text`` (ISO, day.month.year, day month year, month day, year)."""
    candidates: list[tuple[int, dt.date]] = []
    for m in _ISO_DATE.finditer(text):
        _try(candidates, m.start(), int(m[1]), int(m[2]), int(m[3]))
    for m in _NUM_DATE.finditer(text):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
        year += 2000 if year < 100 else 0
        if month > 12 >= day:
            day, month = month, day
        _try(candidates, m.start(), year, month, day)
    for m in _TEXT_DATE.finditer(text):
        if (mon := _MONTHS.get(m[2][:3].lower())) is not None:
            _try(candidates, m.start(), int(m[3]), mon, int(m[1]))
    for m in _TEXT_DATE_US.finditer(text):
        if (mon := _MONTHS.get(m[1][:3].lower())) is not None:
            _try(candidates, m.start(), int(m[3]), mon, int(m[2]))
    return min(candidates)[1] if candidates else None


def _try(out: list[tuple[int, dt.date]], pos: int, y: int, m: int, d: int) -> None:
    with contextlib.suppress(ValueError):  # not a real date (31.02.)
        out.append((pos, dt.date(y, m, d)))


def extract_expense(text: str, default_currency: str = "EUR") -> ExpenseFields | None:
    """Expense fields if ``text`` reads like a receipt with a total; ``None`` otherwise."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not _RECEIPT.search(text):
        return None
    total_lines = [ln for ln in lines if _TOTAL.search(ln) and parse_amount(ln) is not None]
    if not total_lines:
        return None
    line = total_lines[-1]
    if re.search(r"\bsub\s*-?\s*total\b", line, re.I) and len(total_lines) == 1:
        return None
    amount = parse_amount(line)
    if amount is None or amount <= 0:
        return None
    vendor = next((ln for ln in lines[:5] if re.search(r"[A-Za-z]{2}", ln)
                   and not _RECEIPT.fullmatch(ln.lower()) and parse_date(ln) is None), None)
    return ExpenseFields(vendor=vendor[:200] if vendor else None, date=parse_date(text),
                         amount=amount,
                         currency=parse_currency(line) or parse_currency(text) or default_currency)
