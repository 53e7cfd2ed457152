"""The fields of an expense read from OCR lines and their boxes.

The lines are deskewed and grouped into rows by their geometry (a label and its amount are two
boxes on one row), pages stacked one under the other. Then:

- **total**: the amount on the row of the strongest total label (``grand total`` / ``amount
  due`` over ``total``), never a subtotal, net, tax, tip, cash tendered, change or item count;
  checked against the subtotal, tax, tip, cash and change rows when they are there;
- **currency**: symbols and ISO codes (``€ $ £``, ``EUR USD GBP CHF``, ``Fr.``), the total's
  row first;
- **date**: ISO, day-first and month-first numbers (``USD`` documents read month-first when
  both readings are valid), written months, two- and four-digit years; the row labelled with
  a date first, never a due date;
- **vendor**: the biggest text near the top that is not an address, a phone number, a date or
  a title such as ``INVOICE``;
- **is_expense**: a total with an amount and the words of a till or an invoice, against the
  words of letters, newsletters, menus and forms.

Each field has a confidence in [0, 1]; :attr:`ExtractedFields.needs_review` flags an expense
whose weakest field is below :data:`REVIEW_BELOW`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from talix_ray.ocr import OcrLine, OcrResult

T = TypeVar("T")

#: An expense whose weakest field is less sure than this is created for review.
REVIEW_BELOW = 0.6


class Found(BaseModel, Generic[T]):
    """A field's value (``None``: not found) and how sure the extraction is of it."""

    value: T | None = None
    confidence: float = Field(default=0.0, ge=0, le=1)


class ExtractedFields(BaseModel):
    """What a document says, field by field."""

    is_expense: bool
    expense_confidence: float = Field(ge=0, le=1)
    vendor: Found[str] = Found[str]()
    date: Found[dt.date] = Found[dt.date]()
    total: Found[Decimal] = Found[Decimal]()
    currency: Found[str] = Found[str]()

    @property
    def confidence(self) -> float:
        """The weakest field's confidence (of an expense), else how sure it is not one."""
        if not self.is_expense:
            return self.expense_confidence
        return min(self.expense_confidence, self.vendor.confidence, self.date.confidence,
                   self.total.confidence, self.currency.confidence)

    @property
    def needs_review(self) -> bool:
        """Whether a person should check this expense."""
        return self.is_expense and self.confidence < REVIEW_BELOW

    def summary(self) -> str:
        """One line for logs and reports."""
        if not self.is_expense:
            return f"not an expense ({self.expense_confidence:.2f})"
        return (f"{self.vendor.value!r} {self.date.value} {self.total.value} "
                f"{self.currency.value} (confidence {self.confidence:.2f})")


# -- geometry ------------------------------------------------------------------------------------
@dataclass
class Box:
    """A line after deskewing and page stacking."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float
    page: int

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


@dataclass
class Row:
    """Boxes on one row, left to right."""

    boxes: list[Box]

    @property
    def text(self) -> str:
        return " ".join(b.text for b in self.boxes)

    @property
    def y(self) -> float:
        return min(b.y0 for b in self.boxes)

    @property
    def confidence(self) -> float:
        return min(b.confidence for b in self.boxes)


def skew(lines: list[OcrLine]) -> float:
    """The page's rotation in radians: the median slope of the long lines' top edges."""
    angles = []
    for line in lines:
        (x0, y0), (x1, y1) = line.points[0], line.points[1]
        height = math.dist(line.points[0], line.points[3])
        if x1 - x0 > 3 * max(height, 1):
            angles.append(math.atan2(y1 - y0, x1 - x0))
    return statistics.median(angles) if angles else 0.0


def boxes(result: OcrResult) -> list[Box]:
    """The result's lines deskewed page by page and stacked: page n+1 under page n."""
    out: list[Box] = []
    offset = 0.0
    for number, page in enumerate(result.pages):
        lines = [ln for ln in result.lines if ln.page == number]
        angle = -skew(lines)
        cos, sin = math.cos(angle), math.sin(angle)
        for line in lines:
            pts = [(x * cos - y * sin, x * sin + y * cos) for x, y in line.points]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            text = unicodedata.normalize("NFKC", line.text)
            out.append(Box(text, min(xs), min(ys) + offset, max(xs), max(ys) + offset,
                           line.confidence, number))
        offset += page.height
    return out


def rows(items: list[Box]) -> list[Row]:
    """Boxes grouped into rows: a box joins a row when their vertical middles are closer
    than half the smaller height."""
    out: list[Row] = []
    for box in sorted(items, key=lambda b: b.cy):
        for row in reversed(out[-3:]):
            ref = statistics.median(b.cy for b in row.boxes)
            small = min(box.height, min(b.height for b in row.boxes))
            if abs(box.cy - ref) < 0.5 * small:
                row.boxes.append(box)
                row.boxes.sort(key=lambda b: b.x0)
                break
        else:
            out.append(Row([box]))
    return out


# -- amounts and currencies --------------------------------------------------------------------
_MARK = r"(?:€|\$|£|(?<![A-Z])(?:EUR|USD|GBP|CHF)|SFr\.?|Fr\.)"
_NUMBER = r"-?\d{1,3}(?:[.,'\u2019` ]\d{3})+(?:[.,]\d{1,2})?|-?\d+(?:[.,]\d{1,2})?"
_MONEY = re.compile(rf"(?<![\d.,])(?P<pre>{_MARK})?\s?(?P<num>{_NUMBER})(?![\d%]|[.,]\d)\s?"
                    rf"(?P<post>{_MARK})?(?![\w])")
_CURRENCY = {"€": "EUR", "$": "USD", "£": "GBP", "EUR": "EUR", "USD": "USD", "GBP": "GBP",
             "CHF": "CHF", "SFR": "CHF", "SFR.": "CHF", "FR.": "CHF"}
_CODES = re.compile(r"(?<![A-Z])(EUR|USD|GBP|CHF)(?![A-Za-z])|(EUR|USD|GBP|CHF)(?=\s?\d)|"
                    r"(?<![A-Za-z])SFr\.?|[€$£]|(?<![A-Za-z])Fr\.(?=\s?\d)")


@dataclass
class Money:
    value: Decimal
    currency: str | None
    exact: bool  # two decimals, as money is written


def parse_number(text: str) -> tuple[Decimal, bool] | None:
    """``1.234,56`` / ``1,234.56`` / ``1'234.50`` / ``1 234,56`` / ``12,50`` / ``7`` → a
    Decimal, and whether it had cents."""
    text = text.strip().replace("\u2019", "'").replace("`", "'")
    negative = text.startswith("-")
    text = text.lstrip("-")
    m = re.fullmatch(r"(.*?)(?:([.,])(\d{1,2}))?", text)
    if m is None:
        return None
    whole, _, cents = m.groups()
    if not re.fullmatch(r"\d{1,3}(?:[.,' ]\d{3})*|\d+", whole):
        return None
    digits = re.sub(r"[.,' ]", "", whole)
    try:
        value = Decimal(digits) + (Decimal(cents) / (10 ** len(cents)) if cents else 0)
    except InvalidOperation:
        return None
    return (-value if negative else value).quantize(Decimal("0.01")), bool(cents)


_MAX_AMOUNT = Decimal(10) ** 10
_SPACED_CENTS = re.compile(r"(\d)\s([.,])(\d{2})(?!\d)|(\d)([.,])\s(\d{2})(?!\d)")


def _leaders(text: str) -> str:
    """Leader dots (``TOTAL ....... £8.87``) that OCR ran into the amount (``£.8..87``)
    taken out."""
    text = re.sub(r"(?<=\d)\.{2,}(?=\d{2}(?!\d))", ".", text)
    text = re.sub(r"\.{2,}", " ", text)
    return re.sub(r"(?<=[€$£])\.(?=\d)", "", text)


def amounts(text: str) -> list[Money]:
    """Every money amount in ``text``, left to right (``43 ,32``: a stray space is closed)."""
    text = _SPACED_CENTS.sub(lambda m: "".join(g for g in m.groups() if g), text)
    text = _leaders(text)
    out = []
    for m in _MONEY.finditer(text):
        parsed = parse_number(m["num"])
        if parsed is None or abs(parsed[0]) >= _MAX_AMOUNT:  # a phone or account number
            continue
        mark = (m["pre"] or m["post"] or "").upper()
        out.append(Money(parsed[0], _CURRENCY.get(mark), parsed[1]))
    return out


def parse_amount(text: str) -> Decimal | None:
    """The last money amount in ``text``."""
    found = amounts(text)
    return found[-1].value if found else None


def currencies(text: str) -> list[str]:
    """The currencies named in ``text`` by symbol or code."""
    return [_CURRENCY[m.group(0).upper()] for m in _CODES.finditer(text)
            if m.group(0).upper() in _CURRENCY]


def parse_currency(text: str) -> str | None:
    """The first currency named in ``text``."""
    found = currencies(text)
    return found[0] if found else None


# -- dates ---------------------------------------------------------------------------------------
_MONTHS = {
    **{m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                   "sep", "oct", "nov", "dec"], 1)},
    "sept": 9, "mrz": 3, "mai": 5, "okt": 10, "dez": 12, "janv": 1, "fevr": 2, "fev": 2,
    "avr": 4, "juin": 6, "juil": 7, "aout": 8, "aou": 8, "mars": 3,
}
_MONTH_NAME = (r"(?i:jan(?:uary|v)?|feb(?:ruary)?|f[ée]vr?|m[äa]r(?:ch|s|z)?|mrz|apr(?:il)?|avr|"
               r"may|mai|june?|juin|july?|juil|aug(?:ust)?|ao[ûu]t|sep(?:t(?:ember)?)?|"
               r"[o0][ck]t(?:ober)?|nov(?:ember)?|d[eé][cz](?:ember)?)")
_ISO = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_NUMERIC = re.compile(r"(?<![\d.,/-])(\d{1,2})\s?([./-])\s?(\d{1,2})\s?\2\s?(\d{4}|\d{2})"
                      r"(?![\d.,:]\d|\d)")
# month names may be glued to the words around them by OCR ("DateJun212024")
_DAY_MONTH = re.compile(rf"(?<!\d)(\d{{1,2}})\.?[\s-]*({_MONTH_NAME})(?![a-zA-Z])\.?[\s,-]*'?"
                        r"(\d{4}|\d{2})(?!\d)")
_MONTH_DAY = re.compile(rf"({_MONTH_NAME})(?![a-zA-Z])\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?"
                        r"(?:[,\s']+(\d{4}|\d{2})|(\d{4}))(?!\d)")  # "November2024" is no date


@dataclass
class DateHit:
    value: dt.date
    ambiguous: bool  # a numeric date both day-first and month-first could read


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


_PLAIN = str.maketrans("0éäû", "oeau")  # OCR reads an O as a zero: "0ct"


def _month(word: str) -> int | None:
    word = word.lower().rstrip(".").translate(_PLAIN)
    for size in (4, 3):
        if (month := _MONTHS.get(word[:size])) is not None:
            return month
    return None


def _date(y: int, m: int, d: int) -> dt.date | None:
    try:
        value = dt.date(y, m, d)
    except ValueError:
        return None
    return value if 1990 <= value.year <= 2100 else None


_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(?::[0-5]\d)?(?!\d)")


def _drop_times(text: str) -> str:
    """Times blanked out: OCR often glues them to the date (``21/07/202219:02``)."""
    def blank(m: re.Match[str]) -> str:
        hour = m[1]
        if int(hour) > 23:  # "20229:02": the hour is one digit, the other is the year's
            return hour[0] + " " * (len(m[0]) - 1)
        return " " * len(m[0])

    return _TIME.sub(blank, text)


def find_dates(text: str, month_first: bool = False) -> list[DateHit]:
    """Every date in ``text``; ``month_first`` decides numeric dates that read both ways."""
    text = " " + _drop_times(text)
    hits: list[tuple[int, DateHit]] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], value: dt.date | None, ambiguous: bool = False) -> None:
        if value is None or any(a < m.end() and m.start() < b for a, b in taken):
            return
        taken.append((m.start(), m.end()))
        hits.append((m.start(), DateHit(value, ambiguous)))

    for m in _ISO.finditer(text):
        add(m, _date(int(m[1]), int(m[2]), int(m[3])))
    for m in _NUMERIC.finditer(text):
        a, b, year = int(m[1]), int(m[3]), _year(m[4])
        day_first, month_first_value = _date(year, b, a), _date(year, a, b)
        if day_first and month_first_value and a != b:
            add(m, month_first_value if month_first else day_first, ambiguous=True)
        else:
            add(m, day_first or month_first_value)
    for m in _DAY_MONTH.finditer(text):
        if (month := _month(m[2])) is not None:
            add(m, _date(_year(m[3]), month, int(m[1])))
    for m in _MONTH_DAY.finditer(text):
        if (month := _month(m[1])) is not None:
            add(m, _date(_year(m[3] or m[4]), month, int(m[2])))
    return [hit for _, hit in sorted(hits, key=lambda h: h[0])]


def parse_date(text: str, month_first: bool = False) -> dt.date | None:
    """The first date in ``text``."""
    found = find_dates(text, month_first)
    return found[0].value if found else None


# -- labels --------------------------------------------------------------------------------------
_GRAND = re.compile(r"grand\s*total|amount\s*(due|payable)|total\s*(due|to\s*pay|amount|ttc|"
                    r"payable|incl)|balance\s*due|to\s*pay\b|montant\s*(ttc|total)|"
                    r"gesamtbetrag|zu\s*zahlen|total\s*\(incl", re.I)
_TOTAL = re.compile(r"(?<![a-z])(total|summe|gesamt|totale|importe)(?![a-z])", re.I)
_NOT_TOTAL = re.compile(
    r"sub\s*-?\s*total|(?<![a-z])net(?![a-z])|(?<![a-z])(vat|tax|mwst|tva|iva|btw|gst|ust)"
    r"(?![a-z])|(?<![a-z])tip|gratuity|service|cash|tender|change|(?<![a-z])items?(?![a-z])|"
    r"discount|sav(ed|ings)|rabatt|remise|points|qty", re.I)
_INCLUDED = re.compile(r"total\s*\(?\s*(incl|inkl|inc\b|ind\b|ind\.)", re.I)  # "ind.": OCR
_EXPENSE_WORDS = re.compile(
    r"receipt|invoice|subtotal|sub-total|(?<![a-z])(vat|tax|mwst|tva|iva|btw|tip|change|cash|"
    r"visa|mastercard|amex|debit|card|auth|tendered|gratuity|quittung|rechnung|facture|"
    r"ticket|amount\s*due|balance\s*due|payment)(?![a-z])", re.I)
_OTHER_WORDS = re.compile(
    r"(?<![a-z])(dear|sincerely|regards|best\s*wishes|unsubscribe|newsletter|issue|menu|"
    r"starters|mains|desserts|form|signature|application|please\s*return|allergens|"
    r"registration|date\s*of\s*birth|membership)(?![a-z])|_{4,}", re.I)
_NOT_VENDOR = re.compile(
    r"(?<![a-z])(receipt|invoice|tax\s*invoice|welcome|date|datum|tel|phone|fax|www|http|"
    r"vat|mwst|tva|uid|che-|store\s*#|table|server|cashier|order|bill\s*to|no\.|street|"
    r"road|avenue|strasse|rue|via|quai|square|kingsway|thank)(?![a-z])|@|\d{3,}|welcome|"
    r"thank\s*you", re.I)  # OCR glues words: "Welcometo"
_ADDRESS = re.compile(r"^\d{1,5}\s?[A-Za-z]|\b\d{4,5}\s?[A-Z][a-z]+$"  # "30 Main St", "8001 Zürich"
                      r"|\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}$")  # a UK postcode: "York E3 9EL"
_DUE = re.compile(r"due\s*date|date\s*of\s*birth|valid|expir|birth|payable\s*by", re.I)
_DATE_LABEL = re.compile(r"(?<![a-z])(date|datum|dated|issued|invoice\s*date)(?![a-z])", re.I)


# -- the fields ----------------------------------------------------------------------------------
def _row_money(row: Row) -> list[Money]:
    return [m for m in amounts(row.text)]


def _label_of(row: Row) -> str:
    """The row's words before its last amount, a currency code glued to them by OCR set
    apart (``TOTALGBP``)."""
    text = row.text
    found = list(_MONEY.finditer(text))
    label = text[:found[-1].start()] if found else text
    return re.sub(r"(EUR|USD|GBP|CHF)", r" \1 ", label)


def find_total(table: list[Row]) -> tuple[Found[Decimal], int | None]:
    """The grand total and the index of its row."""
    best: tuple[float, int, Money] | None = None
    for i, row in enumerate(table):
        label = _label_of(row)
        if _INCLUDED.search(label):
            strength = 3.0
        elif _NOT_TOTAL.search(label):
            continue
        elif _GRAND.search(label):
            strength = 3.0
        elif _TOTAL.search(label):
            strength = 2.0
        else:
            continue
        money = [m for m in _row_money(row) if m.value > 0]
        source = row
        if not money and i + 1 < len(table) and not _NOT_TOTAL.search(table[i + 1].text):
            money = [m for m in _row_money(table[i + 1]) if m.value > 0]  # amount below
            strength -= 0.5
            source = table[i + 1]
        if not money:
            continue
        pick = money[-1]
        if not pick.exact:
            strength -= 0.7
        strength += 0.1 * source.confidence
        if best is None or strength >= best[0]:  # ties: the later row
            best = (strength, i, pick)
    if best is None:
        return Found[Decimal](), None
    strength, index, chosen = best
    confidence = {3: 0.9, 2: 0.8}.get(int(strength), 0.5)
    bonus, corrected = _consistency(table, chosen.value)
    confidence = max(0.0, min(1.0, confidence + bonus))
    return Found[Decimal](value=corrected or chosen.value,
                          confidence=round(confidence, 3)), index


def _labelled(table: list[Row]) -> dict[str, Decimal]:
    """The first amount of each of the subtotal, tax, tip, cash and change rows."""
    found: dict[str, Decimal] = {}
    for row in table:
        money = _row_money(row)
        if not money:
            continue
        label = _label_of(row).lower()
        for key, pattern in (("sub", r"sub\s*-?\s*total|(?<![a-z])net"),
                             ("tax", r"vat|tax|mwst|tva|iva|btw"),
                             ("tip", r"tip|gratuity|service"), ("cash", r"cash|tender"),
                             ("change", r"change")):
            if re.search(pattern, label) and key not in found:
                found[key] = money[-1].value
    return found


def _consistency(table: list[Row], total: Decimal) -> tuple[float, Decimal | None]:
    """A confidence bonus when the rows around the total agree with it (subtotal + tax + tip,
    cash - change), a penalty when they disagree; and the total two of them agree on when
    that is not the one read (OCR lost a digit of it)."""
    rows = _labelled(table)
    zero = Decimal(0)
    paid = rows["cash"] - rows["change"] if "cash" in rows and "change" in rows else None
    sums: set[Decimal] = set()
    if "sub" in rows:
        sub, tax, tip = rows["sub"], rows.get("tax", zero), rows.get("tip", zero)
        sums = {sub + tax + tip, sub + tip, sub + tax, sub}
    if paid is not None and paid > 0 and paid in sums and paid != total:
        return -0.4, paid  # two sources agree on another total
    bonus = 0.0
    if paid is not None:
        bonus += 0.1 if paid == total else -0.1
    if sums:
        bonus += 0.1 if total in sums else (-0.1 if total < min(sums) else 0.0)
    return bonus, None


def find_currency(table: list[Row], total_row: int | None) -> Found[str]:
    """The currency: the total row's, else the most named one in the document."""
    if total_row is not None:
        near = currencies(table[total_row].text)
        if near:
            return Found[str](value=near[-1], confidence=0.95)
    counts: dict[str, int] = {}
    for row in table:
        for code in currencies(row.text):
            counts[code] = counts.get(code, 0) + 1
    if not counts:
        # no symbol or code could be read: amounts with decimal commas are most likely euros;
        # a guess, so the expense goes to review
        money = [m for row in table for m in amounts(row.text) if m.exact]
        comma = sum(1 for row in table for m in _MONEY.finditer(row.text)
                    if re.search(r",\d{2}$", m["num"]))
        if money and comma > len(money) / 2:
            return Found[str](value="EUR", confidence=0.4)
        return Found[str]()
    code = max(counts, key=lambda c: counts[c])
    share = counts[code] / sum(counts.values())
    return Found[str](value=code, confidence=round(0.5 + 0.4 * share, 3))


def find_date(table: list[Row], month_first: bool) -> Found[dt.date]:
    """The document's date: a row labelled with a date first, else the first date."""
    candidates: list[tuple[float, DateHit]] = []
    for i, row in enumerate(table):
        if _DUE.search(row.text):
            continue
        for hit in find_dates(row.text, month_first):
            rank = (2.0 if _DATE_LABEL.search(row.text) else 1.0) - i * 0.001
            candidates.append((rank, hit))
    if not candidates:
        return Found[dt.date]()
    rank, hit = max(candidates, key=lambda c: c[0])
    confidence = 0.95 if rank >= 2 else 0.85
    if hit.ambiguous:
        confidence -= 0.1
    others = {h.value for _, h in candidates}
    if len(others) > 1 and rank < 2:
        confidence -= 0.15
    return Found[dt.date](value=hit.value, confidence=round(confidence, 3))


def find_vendor(table: list[Row], items: list[Box]) -> Found[str]:
    """The biggest text near the top of the first page that names no address, date, phone
    or title."""
    if not items:
        return Found[str]()
    first = [r for r in table if r.boxes[0].page == 0] or table
    top = first[: max(6, len(first) // 3)]
    typical = statistics.median(b.height for b in items)
    best: tuple[float, Box, Row] | None = None
    for i, row in enumerate(top):
        for box in row.boxes:
            text = box.text.strip()
            letters = sum(c.isalpha() for c in text)
            if letters < 3 or letters < 0.5 * len(text.replace(" ", "")) or \
                    _NOT_VENDOR.search(text) or _ADDRESS.search(text) or find_dates(text) \
                    or amounts_only(text):
                continue
            score = box.height / typical - 0.05 * i
            if best is None or score > best[0]:
                best = (score, box, row)
    if best is None:
        return Found[str]()
    score, box, row = best
    parts = [b for b in row.boxes if abs(b.height - box.height) < 0.2 * box.height
             and not _NOT_VENDOR.search(b.text)]
    name = " ".join(b.text for b in parts).strip(" -*:|")
    confidence = 0.9 if box.height >= 1.2 * typical else 0.65
    confidence *= min(1.0, 0.3 + box.confidence)
    return Found[str](value=name[:200], confidence=round(min(confidence, 1.0), 3))


def amounts_only(text: str) -> bool:
    """Whether ``text`` is nothing but amounts and marks."""
    return not re.sub(_MONEY, "", text).strip(" .:-*")


def is_expense(table: list[Row], total: Found[Decimal]) -> tuple[bool, float]:
    """Whether the document is a receipt or an invoice, and how sure that is."""
    text = "\n".join(r.text for r in table)
    plus = len(_EXPENSE_WORDS.findall(text))
    minus = len(_OTHER_WORDS.findall(text))
    if total.value is None:
        return False, round(min(0.99, 0.8 + 0.04 * minus), 3)
    if minus > plus + 1:
        return False, round(min(0.95, 0.5 + 0.1 * (minus - plus)), 3)
    sure = 0.6 + 0.1 * min(plus, 3) - 0.1 * minus
    return True, round(max(0.3, min(0.99, sure)), 3)


def extract_fields(result: OcrResult) -> ExtractedFields:
    """The expense fields of an OCR result (see the module's description)."""
    items = [b for b in boxes(result) if b.text.strip()]
    table = rows(items)
    total, total_row = find_total(table)
    expense, sure = is_expense(table, total)
    if not expense:
        return ExtractedFields(is_expense=False, expense_confidence=sure)
    currency = find_currency(table, total_row)
    date = find_date(table, month_first=currency.value == "USD")
    vendor = find_vendor(table, items)
    return ExtractedFields(is_expense=True, expense_confidence=sure, vendor=vendor, date=date,
                           total=total, currency=currency)
