"""A seeded generator of receipts, invoices and documents that are not expenses.

Each document is laid out as placed text (so that it can become an image or a PDF with a text
layer), rendered with the DejaVu and STIX fonts that ship inside matplotlib, then degraded
like a scan or a phone photo: slight rotation, blur, speckles, JPEG artefacts. It comes with
its ground truth. The same seed gives the same documents; tests and the benchmark use
different seeds.

``accuracy(n, seed)`` reads ``n`` generated documents with an engine, extracts their fields
and measures ``field_accuracy`` (see :func:`accuracy`).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from PIL.Image import Image

    from talix_ray.ocr import OcrEngine

Kind = Literal["receipt", "invoice", "letter", "newsletter", "menu", "form"]
Format = Literal["png", "jpeg", "webp", "tiff", "pdf", "pdf-scan"]
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg",
                                 "webp": "image/webp", "tiff": "image/tiff",
                                 "pdf": "application/pdf", "pdf-scan": "application/pdf"}
CENT = Decimal("0.01")


class GroundTruth(BaseModel):
    """What a generated document says: for an expense its vendor, date, total and currency."""

    kind: Kind
    is_expense: bool
    vendor: str | None = None
    date: dt.date | None = None
    total: Decimal | None = None
    currency: str | None = None


class GeneratedDocument(BaseModel):
    """A generated file and its ground truth."""

    name: str
    content: bytes
    content_type: str
    pages: int
    truth: GroundTruth


# -- fonts ---------------------------------------------------------------------------------------
FAMILIES = {  # family -> (regular, bold) file names in matplotlib's mpl-data/fonts/ttf
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
    "stix": ("STIXGeneral.ttf", "STIXGeneralBol.ttf"),
}
_PDF_FONTS = {"sans": ("Helvetica", "Helvetica-Bold"), "serif": ("Times-Roman", "Times-Bold"),
              "mono": ("Courier", "Courier-Bold"), "stix": ("Times-Roman", "Times-Bold")}


def font_dir() -> str:
    """matplotlib's bundled TrueType fonts (found by path at run time)."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


_font_cache: dict[tuple[str, bool, int], Any] = {}


def _font(family: str, bold: bool, size: int) -> Any:
    from PIL import ImageFont

    key = (family, bold, size)
    if key not in _font_cache:
        _font_cache[key] = ImageFont.truetype(
            os.path.join(font_dir(), FAMILIES[family][int(bold)]), size)
    return _font_cache[key]


# -- layout --------------------------------------------------------------------------------------
@dataclass
class Piece:
    """A run of text placed on the page (x of its left edge, y of its top)."""

    text: str
    x: float
    y: float
    size: int
    bold: bool = False


@dataclass
class Layout:
    """Text placed on a page of ``width`` pixels, in one font family."""

    width: int
    family: str
    margin: int
    size: int
    pieces: list[Piece] = field(default_factory=list)
    y: float = 0.0
    breaks: list[float] = field(default_factory=list)  # ys between rows where a page may end

    def _len(self, text: str, size: int, bold: bool) -> float:
        return float(_font(self.family, bold, size).getlength(text))

    def row(self, left: str = "", right: str = "", *, center: str = "", size: int | None = None,
            bold: bool = False, gap: float = 0.45, indent: int = 0) -> None:
        """A row: text on the left, on the right (right-aligned), or centred."""
        size = size or self.size
        if center:
            x = (self.width - self._len(center, size, bold)) / 2
            self.pieces.append(Piece(center, x, self.y, size, bold))
        if left:
            self.pieces.append(Piece(left, self.margin + indent, self.y, size, bold))
        if right:
            x = self.width - self.margin - self._len(right, size, bold)
            self.pieces.append(Piece(right, x, self.y, size, bold))
        self.y += size * (1 + gap)
        self.breaks.append(self.y - size * gap / 2)

    def leader(self, left: str, right: str, *, bold: bool = False) -> None:
        """``left ........ right`` as one run of text, filling the width."""
        dot = self._len(".", self.size, bold)
        room = self.width - 2 * self.margin - self._len(f"{left}  {right}", self.size, bold)
        self.row(f"{left} {'.' * max(2, int(room / dot))} {right}", bold=bold)

    def space(self, lines: float = 0.6) -> None:
        self.y += self.size * lines

    def paragraph(self, text: str, rng: random.Random) -> None:
        """Wrapped text."""
        words, line = text.split(), ""
        for word in words:
            trial = f"{line} {word}".strip()
            if self._len(trial, self.size, False) > self.width - 2 * self.margin and line:
                self.row(line)
                line = word
            else:
                line = trial
        if line:
            self.row(line)

    @property
    def height(self) -> int:
        return int(self.y + self.margin)


# -- money and dates ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MoneyStyle:
    """How a document writes amounts: separators and where the currency goes."""

    currency: str
    decimal: str
    thousands: str
    mark: str  # the symbol or code printed
    place: Literal["prefix", "suffix"]
    on_items: bool  # whether item lines carry the mark too
    glue: str = " "  # between the mark and the number

    def number(self, value: Decimal) -> str:
        whole, cents = f"{value.quantize(CENT):.2f}".split(".")
        negative = whole.startswith("-")
        whole = whole.lstrip("-")
        groups: list[str] = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        groups.insert(0, whole)
        return ("-" if negative else "") + self.thousands.join(groups) + self.decimal + cents

    def money(self, value: Decimal, mark: bool | None = None) -> str:
        text = self.number(value)
        if not (self.on_items if mark is None else mark):
            return text
        return (f"{self.mark}{self.glue}{text}" if self.place == "prefix"
                else f"{text}{self.glue}{self.mark}")


_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}
_SEPARATORS = {
    "EUR": [((",", "."), 4), ((",", " "), 2), ((",", ""), 2), ((".", ","), 1)],
    "USD": [((".", ","), 4), ((".", ""), 1)],
    "GBP": [((".", ","), 4), ((".", ""), 1)],
    "CHF": [((".", "'"), 3), ((".", ","), 1), ((".", " "), 1), ((".", ""), 1)],
}


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def money_style(rng: random.Random, currency: str) -> MoneyStyle:
    decimal, thousands = _pick(rng, _SEPARATORS[currency])
    code = rng.random() < 0.3 or currency == "CHF"
    mark = currency if code else _SYMBOLS[currency]
    places: list[Literal["prefix", "suffix"]] = ["prefix", "suffix"]
    place = rng.choice(places) if currency in ("EUR", "CHF") or code else "prefix"
    glue = "" if len(mark) == 1 and place == "prefix" and rng.random() < 0.7 else " "
    return MoneyStyle(currency, decimal, thousands, mark, place, rng.random() < 0.5, glue)


_DAY_FIRST = ["%d/%m/%Y", "%d.%m.%Y", "%d.%m.%y", "%d/%m/%y", "%d %b %Y", "%d %B %Y",
              "%Y-%m-%d", "%d-%b-%Y", "%d-%m-%Y", "%d %b %y"]
_MONTH_FIRST = ["%m/%d/%Y", "%m/%d/%y", "%b %d, %Y", "%B %d, %Y", "%m-%d-%Y", "%Y-%m-%d",
                "%b %d %Y"]


def write_date(rng: random.Random, day: dt.date, month_first: bool) -> str:
    fmt = rng.choice(_MONTH_FIRST if month_first else _DAY_FIRST)
    text = day.strftime(fmt)
    return text.upper() if "%b" in fmt and rng.random() < 0.3 else text


def random_date(rng: random.Random) -> dt.date:
    return dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 5))


# -- names ---------------------------------------------------------------------------------------
_ADJ = ["Blue", "Golden", "Red", "Green", "Silver", "Old", "Little", "Royal", "Corner",
        "Sunny", "North", "Harbor", "Maple", "Oak", "River", "Lakeside", "Urban", "Village",
        "Central", "Happy", "Bright", "Copper", "Velvet", "Iron", "Crystal", "Wild"]
_NOUN = ["Bottle", "Fork", "Lantern", "Anchor", "Mill", "Bridge", "Garden", "Crown", "Owl",
         "Fox", "Bean", "Leaf", "Stone", "Spoon", "Barrel", "Kettle", "Pine", "Harvest",
         "Sparrow", "Tower", "Compass", "Meadow"]
_SHOP = {"cafe": ["Coffee", "Cafe", "Espresso Bar", "Tea Room"],
         "food": ["Bistro", "Pizzeria", "Deli", "Kitchen", "Grill", "Brasserie"],
         "shop": ["Hardware", "Books", "Pharmacy", "Bakery", "Market", "Grocers", "Florist",
                  "Stationery", "Electronics"],
         "travel": ["Taxi", "Hotel", "Garage", "Parking", "Car Wash"]}
_SURNAMES = ["Miller", "Schmidt", "Dupont", "Rossi", "Keller", "Brennan", "Novak", "Larsen",
             "Weber", "Moreau", "Fischer", "Baker", "Hughes", "Meier", "Jansen", "Clarke"]
_SUFFIX = {"EUR": ["GmbH", "SARL", "BV", "SRL"], "USD": ["Inc", "LLC", "Co"],
           "GBP": ["Ltd", "& Sons"], "CHF": ["AG", "GmbH", "SA"]}
_ITEMS: dict[str, list[tuple[str, float, float]]]  # kind -> (item, lowest, highest price)
_ITEMS = {"cafe": [("Cappuccino", 3.2, 5.5), ("Latte", 3.5, 5.9), ("Espresso", 1.8, 3.5),
                   ("Croissant", 2.1, 4.2), ("Muffin", 2.5, 4.5), ("Green Tea", 2.4, 4.0),
                   ("Bagel", 3.0, 6.5), ("Orange Juice", 3.5, 6.0)],
          "food": [("Margherita", 8, 14), ("Caesar Salad", 9, 15), ("Burger", 11, 19),
                   ("Soup of the day", 5, 9), ("Sparkling Water", 2.5, 5), ("House Wine", 5, 9),
                   ("Tiramisu", 5, 8), ("Fish and Chips", 12, 19), ("Steak", 22, 38)],
          "shop": [("Screws 4x40 (100)", 3, 9), ("Hammer", 12, 29), ("Notebook A5", 2, 7),
                   ("Paint 2.5L", 19, 45), ("Batteries AA", 4, 12), ("Paperback", 8, 22),
                   ("Aspirin 500mg", 3, 8), ("Bread", 2, 5), ("Roses (10)", 15, 35),
                   ("USB cable", 6, 19), ("Tape measure", 7, 18)],
          "travel": [("Fare", 9, 85), ("Waiting time", 2, 12), ("Room, 1 night", 79, 260),
                     ("City tax", 1, 6), ("Parking 3h", 4, 15), ("Oil change", 45, 120),
                     ("Premium wash", 12, 30), ("Breakfast", 12, 25)]}
_SERVICES = [("Consulting", 400, 4000), ("Software licence", 200, 2500),
             ("Maintenance contract", 300, 3000), ("Design work", 500, 6000),
             ("Hosting (annual)", 120, 1500), ("Training day", 600, 2200)]
_STREETS = ["Main Street", "Rue de Rivoli", "Bahnhofstrasse", "High Street", "Via Roma",
            "Market Square", "Kingsway", "Elm Avenue", "Dorfstrasse", "Quai Voltaire"]
_CITIES = {"EUR": ["Paris", "Berlin", "Amsterdam", "Milan", "Vienna", "Dublin", "Lyon"],
           "USD": ["Boston", "Seattle", "Austin", "Denver", "Portland", "Chicago"],
           "GBP": ["London", "Leeds", "Bristol", "York", "Brighton", "Glasgow"],
           "CHF": ["Zurich", "Geneva", "Basel", "Bern", "Lucerne", "Lausanne"]}


def vendor_name(rng: random.Random, kind: str, currency: str) -> str:
    shop = rng.choice(_SHOP[kind])
    r = rng.random()
    if r < 0.45:
        return f"{rng.choice(_ADJ)} {rng.choice(_NOUN)} {shop}"
    if r < 0.65:
        return f"{rng.choice(_SURNAMES)}'s {shop}"
    if r < 0.8:
        return f"The {rng.choice(_NOUN)} {shop}"
    if r < 0.9 and kind == "cafe":
        return f"Café {rng.choice(_NOUN)}"
    return f"{rng.choice(_SURNAMES)} {shop} {rng.choice(_SUFFIX[currency])}"


def _address(rng: random.Random, currency: str) -> list[str]:
    street = f"{rng.randint(1, 240)} {rng.choice(_STREETS)}"
    city = rng.choice(_CITIES[currency])
    code = {"USD": f"{city}, MA {rng.randint(10000, 99999)}",
            "GBP": f"{city} {rng.choice('BLMSEW')}{rng.randint(1, 20)} {rng.randint(1, 9)}"
                   f"{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}",
            }.get(currency, f"{rng.randint(1000, 99999)} {city}")
    lines = [street, code]
    if rng.random() < 0.5:
        lines.append(f"Tel. +{rng.randint(1, 49)} {rng.randint(100, 999)} "
                     f"{rng.randint(100000, 999999)}")
    return lines


def _amount(rng: random.Random, low: float, high: float) -> Decimal:
    return Decimal(str(rng.uniform(low, high))).quantize(Decimal("0.1") if rng.random() < 0.3
                                                         else CENT, ROUND_HALF_UP)


# -- expenses ------------------------------------------------------------------------------------
_TOTAL_LABELS = ["TOTAL", "Total", "TOTAL DUE", "Amount due", "Total to pay", "Balance due",
                 "TOTAL TTC", "Total amount", "Summe", "GRAND TOTAL", "Amount payable"]
_TAX: dict[str, list[tuple[str, list[float]]]]  # currency -> (tax name, rates in %)
_TAX = {"EUR": [("VAT", [19, 20, 10, 21, 7]), ("TVA", [20, 10, 5.5]), ("MwSt", [19, 7]),
                ("IVA", [22, 10]), ("BTW", [21, 9])],
        "USD": [("Sales Tax", [8.875, 6.25, 7, 10.25]), ("Tax", [6, 8.25])],
        "GBP": [("VAT", [20, 5])],
        "CHF": [("MWST", [8.1, 2.6]), ("TVA", [8.1]), ("VAT", [8.1])]}


def _layout(rng: random.Random, kind: str) -> Layout:
    family = _pick(rng, [("mono", 4), ("sans", 3), ("serif", 2), ("stix", 1)])
    size = rng.randint(17, 25) if kind != "invoice" else rng.randint(16, 21)
    chars = rng.randint(32, 42) if kind not in ("invoice", "letter", "newsletter", "form") \
        else rng.randint(55, 70)
    width = int(chars * size * (0.6 if family == "mono" else 0.55)) + 2 * 24
    return Layout(width=width, family=family, margin=rng.randint(18, 40), size=size,
                  y=rng.randint(20, 50))


def receipt(rng: random.Random) -> tuple[Layout, GroundTruth]:
    """A till receipt: vendor, address, date, items, subtotal, taxes, tip, total, payment."""
    currency = _pick(rng, [("EUR", 4), ("USD", 3), ("GBP", 2), ("CHF", 2)])
    kind = rng.choice(list(_SHOP))
    style = money_style(rng, currency)
    lay = _layout(rng, "receipt")
    vendor = vendor_name(rng, kind, currency)
    day = random_date(rng)
    centred = rng.random() < 0.6
    if rng.random() < 0.15:
        lay.row(center="Welcome to", size=int(lay.size * 0.85)) if centred \
            else lay.row("Welcome to", size=int(lay.size * 0.85))
    head = vendor.upper() if rng.random() < 0.35 else vendor
    hsize = int(lay.size * rng.uniform(1.3, 1.9))
    while lay._len(head, hsize, True) > lay.width - 2 * lay.margin and hsize > lay.size:
        hsize -= 1
    bold = rng.random() < 0.7
    lay.row(center=head, size=hsize, bold=bold) if centred else lay.row(head, size=hsize,
                                                                         bold=bold)
    for line in _address(rng, currency):
        lay.row(center=line) if centred else lay.row(line)
    if rng.random() < 0.4:
        vat_id = {"EUR": f"VAT ID DE{rng.randint(10**8, 10**9 - 1)}",
                  "GBP": f"VAT Reg No {rng.randint(100, 999)} {rng.randint(1000, 9999)} 12",
                  "CHF": f"CHE-{rng.randint(100, 999)}.{rng.randint(100, 999)}.123 MWST",
                  "USD": f"Store #{rng.randint(10, 9999)}"}[currency]
        lay.row(center=vat_id) if centred else lay.row(vat_id)
    lay.space()
    if rng.random() < 0.3:
        lay.row(center=rng.choice(["RECEIPT", "Sales receipt", "TAX INVOICE", "Receipt"]))
    date_text = write_date(rng, day, month_first=currency == "USD")
    when = f"{rng.randint(7, 22):02d}:{rng.randint(0, 59):02d}"
    label = rng.choice(["Date:", "Date", "", "Datum:"])
    match rng.randint(0, 3):
        case 0:
            lay.row(f"{label} {date_text}".strip(), when)
        case 1:
            lay.row(f"{label} {date_text} {when}".strip())
        case 2:
            lay.row(f"Receipt #{rng.randint(1000, 99999)}", date_text)
        case _:
            lay.row(f"Table {rng.randint(1, 30)}  Server: {rng.choice(_SURNAMES)}")
            lay.row(f"{date_text}  {when}")
    lay.space(0.4)
    subtotal = Decimal(0)
    for _ in range(rng.randint(1, 7)):
        name, low, high = rng.choice(_ITEMS[kind])
        price = _amount(rng, low, high)
        qty = rng.choice([1, 1, 1, 2, 3])
        line_total = price * qty
        subtotal += line_total
        if qty > 1 and rng.random() < 0.5:
            lay.row(f"{qty} x {name}", indent=0)
            lay.row(f"{qty} x {style.number(price)}", style.money(line_total), indent=20)
        elif rng.random() < 0.15:
            lay.leader(f"{qty} {name}" if qty > 1 else name, style.money(line_total))
        else:
            lay.row(f"{qty} {name}" if qty > 1 else name, style.money(line_total))
    subtotal = subtotal.quantize(CENT)
    discount = Decimal(0)
    if rng.random() < 0.15:
        discount = (subtotal * Decimal(rng.choice([5, 10, 15])) / 100).quantize(CENT)
        lay.row("Discount", "-" + style.money(discount))
    lay.space(0.3)
    net = subtotal - discount
    tax_name, rates = rng.choice(_TAX[currency])
    rate = Decimal(str(rng.choice(rates)))
    included = currency != "USD" and rng.random() < 0.7
    if included:
        tax = (net - net / (1 + rate / 100)).quantize(CENT)
        before_tip = net
    else:
        tax = (net * rate / 100).quantize(CENT)
        before_tip = net + tax
    if rng.random() < 0.75:
        lay.row(rng.choice(["Subtotal", "SUBTOTAL", "Sub-total", "Net"]),
                style.money(net if not included else net - tax))
    rate_text = (f"{rate:g}".replace(".", style.decimal)) + "%"
    tax_row = (f"incl. {tax_name} {rate_text}" if included else f"{tax_name} {rate_text}")
    tip = Decimal(0)
    tip_first = kind == "food" and rng.random() < 0.5
    grand = rng.random() < 0.3 and tip_first
    if not grand:
        if not included:
            lay.row(tax_row, style.money(tax))
        if tip_first:
            tip = (before_tip * Decimal(rng.choice([10, 12, 15, 18, 20])) / 100).quantize(CENT)
            lay.row(rng.choice(["Tip", "Gratuity", "Service"]), style.money(tip))
    total = (before_tip + tip).quantize(CENT)
    if grand:  # Total, then a tip, then the grand total: the last one is what was paid
        if not included:
            lay.row(tax_row, style.money(tax))
        lay.row("Total", style.money(before_tip))
        tip = (before_tip * Decimal(rng.choice([10, 15, 20])) / 100).quantize(CENT)
        lay.row("Tip", style.money(tip))
        total = (before_tip + tip).quantize(CENT)
        label = "Grand Total"
    else:
        label = rng.choice(_TOTAL_LABELS)
    if rng.random() < 0.2:
        label = f"{label} {currency}"
        money = style.number(total)
    else:
        money = style.money(total, mark=True)
    tsize = lay.size + rng.choice([0, 0, 2, 4])
    if rng.random() < 0.1:
        lay.leader(label, money, bold=True)
    else:
        lay.row(label, money, size=tsize, bold=rng.random() < 0.6)
    if included:
        lay.row(tax_row, style.money(tax))
    if rng.random() < 0.5:
        cash = (total + Decimal(rng.choice([0, 1, 2, 5, 10, 20, 50]))).quantize(Decimal(1)) + \
            Decimal(rng.choice([0, 0, 5, 10, 20, 50]))
        cash = max(cash, total.quantize(Decimal(1), ROUND_HALF_UP) + 1)
        lay.row(rng.choice(["Cash", "CASH", "Tendered", "Cash paid"]), style.money(cash))
        lay.row(rng.choice(["Change", "CHANGE", "Change due"]), style.money(cash - total))
    else:
        lay.row(rng.choice(["VISA", "Mastercard", "Debit card", "AMEX"]),
                f"**** {rng.randint(1000, 9999)}")
        if rng.random() < 0.5:
            lay.row(f"Auth code {rng.randint(100000, 999999)}")
    lay.space()
    if rng.random() < 0.3:
        lay.row(f"Items: {rng.randint(1, 9)}")
    lay.row(center=rng.choice(["Thank you!", "Thank you for your visit", "See you soon",
                               "Please keep your receipt", "Merci !"]))
    return lay, GroundTruth(kind="receipt", is_expense=True, vendor=vendor, date=day,
                            total=total, currency=currency)


def invoice(rng: random.Random) -> tuple[Layout, GroundTruth]:
    """A business invoice: vendor letterhead, invoice number and date, lines, VAT, total due."""
    currency = _pick(rng, [("EUR", 4), ("USD", 2), ("GBP", 2), ("CHF", 2)])
    style = money_style(rng, currency)
    lay = _layout(rng, "invoice")
    vendor = f"{rng.choice(_SURNAMES)} {rng.choice(['Consulting', 'Systems', 'Studio', 'Digital', 'Engineering'])} {rng.choice(_SUFFIX[currency])}"  # noqa: E501
    day = random_date(rng)
    hsize = int(lay.size * rng.uniform(1.5, 2.0))
    lay.row(vendor, size=hsize, bold=True)
    for line in _address(rng, currency):
        lay.row(line)
    lay.space()
    lay.row(rng.choice(["INVOICE", "Invoice", "TAX INVOICE"]), size=int(lay.size * 1.3),
            bold=True)
    lay.row(f"Invoice No. {rng.randint(2020, 2026)}-{rng.randint(100, 9999)}")
    label = rng.choice(["Invoice date:", "Date:", "Date of issue:"])
    lay.row(f"{label} {write_date(rng, day, month_first=currency == 'USD')}")
    due = day + dt.timedelta(days=30)
    if rng.random() < 0.5:
        lay.row(f"Due date: {write_date(rng, due, month_first=currency == 'USD')}")
    lay.row(f"Bill to: {rng.choice(_SURNAMES)} {rng.choice(_NOUN)} Ltd")
    lay.space()
    lay.row("Description", "Amount", bold=True)
    net = Decimal(0)
    for _ in range(rng.randint(1, 4)):
        name, low, high = rng.choice(_SERVICES)
        amount = _amount(rng, low, high)
        net += amount
        lay.row(name, style.money(amount))
    net = net.quantize(CENT)
    tax_name, rates = rng.choice(_TAX[currency])
    rate = Decimal(str(rng.choice(rates)))
    tax = (net * rate / 100).quantize(CENT)
    total = net + tax
    lay.space(0.3)
    lay.row(rng.choice(["Subtotal", "Net amount", "Total net"]), style.money(net))
    lay.row(f"{tax_name} {rate:g}%".replace(".", style.decimal), style.money(tax))
    label = rng.choice(["Total due", "TOTAL", "Amount due", "Total (incl. VAT)", "Balance due"])
    if rng.random() < 0.3:
        lay.row(f"{label} ({currency})", style.number(total), bold=True)
    else:
        lay.row(label, style.money(total, mark=True), bold=True)
    lay.space()
    lay.row(f"Payment within 30 days. IBAN {rng.choice(['DE', 'FR', 'CH', 'GB'])}"
            f"{rng.randint(10, 99)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}")
    return lay, GroundTruth(kind="invoice", is_expense=True, vendor=vendor, date=day,
                            total=total, currency=currency)


# -- documents that are not expenses -----------------------------------------------------------
_LOREM = (  # noqa: SIM905
    "we are writing to let you know about changes to our opening hours and services "
    "starting next month our team will be available on weekdays and the first "
    "Saturday of each month please contact us with any questions about your account "
    "we value your trust and look forward to seeing you again soon").split()


def _sentence(rng: random.Random, words: int) -> str:
    start = rng.randrange(0, len(_LOREM) - words)
    text = " ".join(_LOREM[start:start + words])
    return text[0].upper() + text[1:] + "."


def letter(rng: random.Random) -> tuple[Layout, GroundTruth]:
    currency = rng.choice(list(_SYMBOLS))
    lay = _layout(rng, "letter")
    sender = vendor_name(rng, rng.choice(list(_SHOP)), currency)
    lay.row(sender, size=int(lay.size * 1.5), bold=True)
    for line in _address(rng, currency):
        lay.row(line)
    lay.space()
    lay.row("", write_date(rng, random_date(rng), month_first=currency == "USD"))
    lay.row(f"Dear {rng.choice(['Ms.', 'Mr.', 'Dr.'])} {rng.choice(_SURNAMES)},")
    lay.space(0.4)
    for _ in range(rng.randint(2, 4)):
        lay.paragraph(_sentence(rng, rng.randint(10, 25)), rng)
        lay.space(0.3)
    if rng.random() < 0.4:
        style = money_style(rng, currency)
        lay.paragraph(f"Your membership fee of {style.money(_amount(rng, 20, 90), True)} "
                      "will stay the same next year.", rng)
    lay.row(rng.choice(["Kind regards,", "Sincerely,", "Best wishes,"]))
    lay.row(f"{rng.choice(['Anna', 'Paul', 'Marie', 'John'])} {rng.choice(_SURNAMES)}")
    return lay, GroundTruth(kind="letter", is_expense=False)


def newsletter(rng: random.Random) -> tuple[Layout, GroundTruth]:
    currency = rng.choice(list(_SYMBOLS))
    style = money_style(rng, currency)
    lay = _layout(rng, "newsletter")
    lay.row(center=f"{rng.choice(_ADJ)} {rng.choice(_NOUN)} News", size=int(lay.size * 1.8),
            bold=True)
    lay.row(center=f"Issue {rng.randint(1, 80)} - "
                   f"{random_date(rng).strftime(rng.choice(['%B %Y', '%b %Y']))}")
    lay.space()
    for _ in range(rng.randint(2, 3)):
        lay.row(rng.choice(["Spring sale", "Meet the team", "New in store", "Events",
                            "Our new opening hours", "Community corner"]), bold=True)
        lay.paragraph(_sentence(rng, rng.randint(12, 22)), rng)
        if rng.random() < 0.5:
            lay.row(f"Now only {style.money(_amount(rng, 5, 60), True)} - save "
                    f"{rng.choice([10, 20, 30])}%")
        lay.space(0.4)
    lay.row("Unsubscribe | www.example.org")
    return lay, GroundTruth(kind="newsletter", is_expense=False)


def menu(rng: random.Random) -> tuple[Layout, GroundTruth]:
    currency = rng.choice(list(_SYMBOLS))
    style = money_style(rng, currency)
    lay = _layout(rng, "menu")
    lay.row(center=vendor_name(rng, "food", currency), size=int(lay.size * 1.6), bold=True)
    lay.row(center=rng.choice(["MENU", "Lunch menu", "Carte", "Dinner"]))
    lay.space()
    for section in rng.sample(["Starters", "Mains", "Desserts", "Drinks"], rng.randint(2, 3)):
        lay.row(section, bold=True)
        for name, low, high in rng.sample(_ITEMS["food"], rng.randint(2, 4)):
            lay.row(name, style.money(_amount(rng, low, high)))
        lay.space(0.4)
    lay.row(center=rng.choice(["Service included", "Ask us about allergens",
                               "Prices include VAT"]))
    return lay, GroundTruth(kind="menu", is_expense=False)


def form(rng: random.Random) -> tuple[Layout, GroundTruth]:
    lay = _layout(rng, "form")
    lay.row(rng.choice(["Membership application", "Change of address form",
                        "Registration form", "Claim form"]), size=int(lay.size * 1.5),
            bold=True)
    lay.row(f"Form {rng.choice('ABCK')}-{rng.randint(10, 99)}")
    lay.space()
    fields = ["Name", "First name", "Address", "Postcode", "City", "Phone", "E-mail",
              "Date of birth", "Signature", "Date", "Amount", "Account number"]
    for name in rng.sample(fields, rng.randint(5, 9)):
        lay.row(f"{name}: " + "_" * rng.randint(12, 30))
    lay.space()
    lay.paragraph("Please return this form by post or hand it in at the front desk.", rng)
    return lay, GroundTruth(kind="form", is_expense=False)


MAKERS: dict[str, Callable[[random.Random], tuple[Layout, GroundTruth]]] = {
    "receipt": receipt, "invoice": invoice, "letter": letter, "newsletter": newsletter,
    "menu": menu, "form": form}


# -- rendering and degradation ---------------------------------------------------------------
def render(lay: Layout, rng: random.Random) -> Image:
    """The layout drawn on paper, slightly rotated, blurred and speckled."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFilter

    paper = tuple(rng.randint(236, 255) for _ in range(3))
    ink = tuple([rng.randint(0, 60)] * 3)
    image = PILImage.new("RGB", (lay.width, lay.height), paper)
    draw = ImageDraw.Draw(image)
    for p in lay.pieces:
        draw.text((p.x, p.y), p.text, font=_font(lay.family, p.bold, p.size), fill=ink)
    for _ in range(rng.randint(0, 60)):  # specks of dust
        x, y = rng.randrange(lay.width), rng.randrange(lay.height)
        draw.point((x, y), fill=tuple([rng.randint(80, 200)] * 3))
    angle = rng.uniform(-2.0, 2.0)
    image = image.rotate(angle, resample=PILImage.Resampling.BICUBIC, expand=True,
                         fillcolor=paper)
    blur = rng.uniform(0, 0.9)
    if blur > 0.2:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if rng.random() < 0.5:  # a JPEG round trip leaves its artefacts in every format
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=rng.randint(45, 80))
        image = PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return image


def split_pages(lay: Layout, image: Image) -> list[Image]:
    """The image cut in two at a row boundary near its middle (a two-page scan)."""
    middle = image.height / 2
    cut = int(min(lay.breaks, key=lambda y: abs(y - middle))) if lay.breaks else int(middle)
    return [image.crop((0, 0, image.width, cut)), image.crop((0, cut, image.width,
                                                               image.height))]


def encode(images: list[Image], fmt: str, rng: random.Random) -> bytes:
    """Image bytes in ``fmt`` (``tiff`` keeps several pages)."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        images[0].save(buf, "JPEG", quality=rng.randint(55, 92))
    elif fmt == "webp":
        images[0].save(buf, "WEBP", quality=rng.randint(60, 95))
    elif fmt == "tiff":
        images[0].save(buf, "TIFF", save_all=True, append_images=images[1:],
                       compression="tiff_deflate")
    elif fmt == "pdf-scan":
        images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=150)
    else:
        images[0].save(buf, "PNG")
    return buf.getvalue()


def text_pdf(lay: Layout) -> bytes:
    """A one-page PDF whose text is a real text layer (standard fonts, WinAnsi encoding)."""
    regular, bold = _PDF_FONTS[lay.family]
    height = lay.height
    ops = []
    for p in lay.pieces:
        text = p.text.encode("cp1252", "replace").replace(b"\\", b"\\\\") \
            .replace(b"(", b"\\(").replace(b")", b"\\)")
        font = "F2" if p.bold else "F1"
        y = height - p.y - p.size * 0.85
        ops.append(b"BT /%s %d Tf %.1f %.1f Td (%s) Tj ET" % (font.encode(), p.size, p.x, y,
                                                                  text))
    stream = b"\n".join(ops)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>" % (lay.width, height),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
        % regular.encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
        % bold.encode(),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def generate_one(rng: random.Random, kind: str, fmt: str = "png", *, pages: int = 1,
                 name: str = "doc") -> GeneratedDocument:
    """One document of ``kind`` in ``fmt`` (``pdf``: text layer, ``pdf-scan``: image only);
    ``pages=2`` splits an image (TIFF, scanned PDF) into two pages."""
    lay, truth = MAKERS[kind](rng)
    if fmt == "pdf":
        content, count = text_pdf(lay), 1
    else:
        image = render(lay, rng)
        images = split_pages(lay, image) if pages > 1 else [image]
        content, count = encode(images, fmt, rng), len(images)
    ext = {"jpeg": "jpg", "pdf-scan": "pdf"}.get(fmt, fmt)
    return GeneratedDocument(name=f"{name}.{ext}", content=content,
                             content_type=CONTENT_TYPES[fmt], pages=count, truth=truth)


def generate(count: int, seed: int, *, expense_share: float = 0.75,
             formats: tuple[str, ...] = ("png", "jpeg", "webp", "tiff")
             ) -> Iterator[GeneratedDocument]:
    """``count`` documents from ``seed``: receipts and invoices (``expense_share`` of them),
    letters, newsletters, menus and forms, in the image formats given, in turn."""
    rng = random.Random(seed)
    for i in range(count):
        if rng.random() < expense_share:
            kind = "receipt" if rng.random() < 0.8 else "invoice"
        else:
            kind = rng.choice(["letter", "newsletter", "menu", "form"])
        fmt = formats[i % len(formats)]
        yield generate_one(rng, kind, fmt, name=f"{seed}-{i:04d}-{kind}")


# -- accuracy --------------------------------------------------------------------------------
def same_vendor(found: str | None, truth: str | None) -> bool:
    """Vendors compared without case, accents, spaces or punctuation."""
    def norm(text: str | None) -> str:
        text = unicodedata.normalize("NFKD", text or "")
        return "".join(c for c in text.casefold() if c.isalnum())

    return bool(found) and norm(found) == norm(truth)


class AccuracyReport(BaseModel):
    """What :func:`accuracy` measured."""

    documents: int
    expenses: int
    field_accuracy: float
    is_expense_accuracy: float
    by_field: dict[str, float]
    pages: int
    seconds: float
    s_per_page: float
    misses: list[str]

    @classmethod
    def merge(cls, parts: list[AccuracyReport]) -> AccuracyReport:
        """One report of the parts read by several processes (``accuracy(part=...)``)."""
        n = sum(p.documents for p in parts)
        pages = sum(p.pages for p in parts)
        seconds = sum(p.seconds for p in parts)

        def mean(get: Callable[[AccuracyReport], float]) -> float:
            return round(sum(get(p) * p.documents for p in parts) / max(n, 1), 4)

        def of_field(k: str) -> Callable[[AccuracyReport], float]:
            return lambda p: p.by_field[k]

        return cls(documents=n, expenses=sum(p.expenses for p in parts),
                   field_accuracy=mean(lambda p: p.field_accuracy),
                   is_expense_accuracy=mean(lambda p: p.is_expense_accuracy),
                   by_field={k: mean(of_field(k)) for k in parts[0].by_field},
                   pages=pages, seconds=round(seconds, 2),
                   s_per_page=round(seconds / max(pages, 1), 3),
                   misses=[m for p in parts for m in p.misses])


def score(truth: GroundTruth, fields: Any) -> dict[str, bool]:
    """Whether each of vendor, date, total and currency was found right. For a document that
    is not an expense, each counts as right only if no expense was found in it."""
    if not truth.is_expense:
        ok = not fields.is_expense
        return dict.fromkeys(("vendor", "date", "total", "currency"), ok)
    if not fields.is_expense:
        return dict.fromkeys(("vendor", "date", "total", "currency"), False)
    return {"vendor": same_vendor(fields.vendor.value, truth.vendor),
            "date": fields.date.value == truth.date,
            "total": fields.total.value == truth.total,
            "currency": fields.currency.value == truth.currency}


def accuracy(n: int = 100, seed: int = 4242, engine: OcrEngine | None = None, *,
             part: tuple[int, int] = (0, 1)) -> AccuracyReport:
    """Generate ``n`` documents from ``seed``, read them with ``engine`` (RapidOCR by default)
    and extract their fields. ``field_accuracy`` is the share of right (document, field)
    pairs over vendor, date, total and currency (see :func:`score`). ``part=(i, k)`` reads
    only every k-th document from the i-th (to share the work between processes; merge the
    parts with :meth:`AccuracyReport.merge`)."""
    index, parts = part
    if not 0 <= index < parts:
        raise ValueError(f"part {part}: expected (i, k) with 0 <= i < k")
    from talix_ray.ocr import get_engine

    from .extraction import extract_fields

    engine = engine or get_engine()
    right: dict[str, int] = dict.fromkeys(("vendor", "date", "total", "currency"), 0)
    kind_right = pages = expenses = 0
    misses: list[str] = []
    seconds = 0.0
    total, n = n, 0
    for i, doc in enumerate(generate(total, seed)):
        if i % parts != index:
            continue
        n += 1
        started = time.perf_counter()
        result = engine.read(doc.content, doc.content_type)
        seconds += time.perf_counter() - started
        pages += result.page_count
        fields = extract_fields(result)
        expenses += doc.truth.is_expense
        kind_right += fields.is_expense == doc.truth.is_expense
        for name, ok in score(doc.truth, fields).items():
            right[name] += ok
            if not ok:
                misses.append(f"{doc.name} {name}: expected "
                              f"{getattr(doc.truth, name, None) if doc.truth.is_expense else '-'}"
                              f", found {fields.summary()}")
    return AccuracyReport(
        documents=n, expenses=expenses,
        field_accuracy=round(sum(right.values()) / (4 * n), 4),
        is_expense_accuracy=round(kind_right / n, 4),
        by_field={k: round(v / n, 4) for k, v in right.items()}, pages=pages,
        seconds=round(seconds, 2), s_per_page=round(seconds / max(pages, 1), 3),
        misses=misses)
