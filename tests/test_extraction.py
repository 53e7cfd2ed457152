"""Field extraction from OCR lines and their boxes: tricky line sets, no OCR needed."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from services.documents.analysis import Analysis
from services.documents.extraction import (
    REVIEW_BELOW,
    amounts,
    extract_fields,
    find_dates,
    parse_currency,
    parse_date,
)
from talix_ray.ocr import OcrLine, OcrPage, OcrResult

Seg = tuple[str, float] | str


def page(rows: list[list[Seg] | Seg], *, big: tuple[int, ...] = (0,), angle: float = 0.0,
         pages: int = 1) -> OcrResult:
    """Rows of (text, x) segments laid out like a receipt: 12 px per character, rows 34 px
    apart, the rows in ``big`` twice as tall, the whole page rotated by ``angle`` degrees;
    ``pages=2`` puts the second half of the rows on a second page."""
    lines: list[OcrLine] = []
    per_page = math.ceil(len(rows) / pages)
    rad = math.radians(angle)

    def rot(x: float, y: float) -> tuple[float, float]:
        return (x * math.cos(rad) - y * math.sin(rad), x * math.sin(rad) + y * math.cos(rad))

    y = 20.0
    for i, row in enumerate(rows):
        if i and i % per_page == 0:
            y = 20.0
        height = 44.0 if i in big else 22.0
        for seg in ([row] if isinstance(row, str | tuple) else row):
            text, x = (seg, 30.0) if isinstance(seg, str) else seg
            width = len(text) * height * 0.55
            corners = (rot(x, y), rot(x + width, y), rot(x + width, y + height),
                       rot(x, y + height))
            lines.append(OcrLine(text=text, points=corners, confidence=0.97,
                                 page=i // per_page))
        y += height + 12
    return OcrResult(engine="test", content_type="image/png", lines=lines,
                     pages=[OcrPage(width=600, height=y + 40, source="ocr")] * pages)


def fields_of(rows: list[list[Seg] | Seg], **kw: object):
    return extract_fields(page(rows, **kw))  # type: ignore[arg-type]


CAFE = [
    ["Blue Bottle Coffee"],
    ["12 Main Street"],
    ["London SW1 4AB"],
    [("Date: 14/03/2025", 30), ("10:42", 420)],
    [("Cappuccino", 30), ("£4.50", 420)],
    [("Croissant", 30), ("£3.50", 420)],
    [("Subtotal", 30), ("£8.00", 420)],
    [("VAT 20%", 30), ("£1.60", 420)],
    [("Tip", 30), ("£1.20", 420)],
    [("TOTAL", 30), ("£10.80", 420)],
    [("Cash", 30), ("£20.00", 420)],
    [("Change", 30), ("£9.20", 420)],
    ["Thank you!"],
]


def test_the_grand_total_not_subtotal_tax_tip_cash_or_change():
    f = fields_of(CAFE)
    assert f.is_expense
    assert f.total.value == Decimal("10.80")
    assert f.currency.value == "GBP"
    assert f.vendor.value == "Blue Bottle Coffee"
    assert f.date.value == dt.date(2025, 3, 14)
    assert f.total.confidence >= 0.9  # subtotal + tax + tip and cash - change agree
    assert not f.needs_review


def test_a_grand_total_after_a_total_and_a_tip_wins():
    rows = [["Harbor Grill"], "Date 03/14/25", [("Burger", 30), ("$18.00", 420)],
            [("Tax", 30), ("$1.62", 420)], [("Total", 30), ("$19.62", 420)],
            [("Tip", 30), ("$3.00", 420)], [("Grand Total", 30), ("$22.62", 420)],
            [("Total items: 1", 30)]]
    f = fields_of(rows)
    assert (f.total.value, f.currency.value) == (Decimal("22.62"), "USD")
    assert f.date.value == dt.date(2025, 3, 14)


def test_label_and_amount_on_one_row_on_a_rotated_page():
    """2 degrees over 400 px moves the amount 14 px down: deskewing keeps it on its row."""
    rows = [["Corner Fox Grill"], "04.12.2025", [("Soup", 30), ("7,47", 430)],
            [("Sub-total", 30), ("92,91", 430)], [("TOTAL TTC", 30), ("102,20 EUR", 430)],
            [("incl. IVA 10%", 30), ("9,29", 430)], [("Mastercard", 30), ("**** 6338", 430)]]
    for angle in (-2.0, 2.0):
        f = fields_of(rows, angle=angle)
        assert (f.total.value, f.currency.value) == (Decimal("102.20"), "EUR"), angle
        assert f.date.value == dt.date(2025, 12, 4)


@pytest.mark.parametrize(("text", "value", "currency"), [
    ("TOTAL 1.234,56 €", "1234.56", "EUR"),
    ("Total CHF 1'234.50", "1234.50", "CHF"),
    ("Total £1,234.00", "1234.00", "GBP"),
    ("Summe 1 234,56 EUR", "1234.56", "EUR"),
    ("TOTAL 12,50€", "12.50", "EUR"),
    ("Amount due USD 57.83", "57.83", "USD"),
    ("AmountpayableUSD 57.83", "57.83", "USD"),  # OCR glued the words
    ("TOTALTTCUSD 5.30", "5.30", "USD"),
    ("Total Fr. 23.40", "23.40", "CHF"),
    ("Total $ 4.50", "4.50", "USD"),
    ("Total12.50", "12.50", None),
    ("Balance due €43 ,32", "43.32", "EUR"),  # a space OCR put before the cents
    ("GRANDTOTAL...........£.8..87", "8.87", "GBP"),  # leader dots run into the amount
    ("Total ........ 12,50", "12.50", None),
])
def test_amounts_with_separators_and_currencies(text, value, currency):
    found = amounts(text)[-1]
    assert found.value == Decimal(value)
    assert parse_currency(text) == currency


@pytest.mark.parametrize("label", ["TOTALGBP", "Total(ind.VAT)(GBP)", "Total (incl. VAT)"])
def test_total_labels_as_ocr_reads_them(label):
    """OCR glues a code to the label, or reads "incl." as "ind."."""
    rows = [["Fox Parking"], "21-10-2021", [("Net", 30), ("813.38", 420)],
            [(label, 30), ("£854.05", 420)], [("incl. VAT 5%", 30), ("40.67", 420)]]
    f = fields_of(rows)
    assert (f.total.value, f.currency.value) == (Decimal("854.05"), "GBP")


def test_a_total_misread_by_ocr_is_corrected_by_the_rows_around_it_for_review():
    """OCR lost the 1 of 135.86: net + tax and cash - change both say 135.86."""
    rows = [["Velvet Barrel Market"], "February 13, 2021", [("Net", 30), ("125.51 USD", 420)],
            [("Tax 8.25%", 30), ("10.35 USD", 420)], [("Balance due", 30), ("USD 35.86", 420)],
            [("CASH", 30), ("146.00 USD", 420)], [("Change due", 30), ("10.14 USD", 420)]]
    f = fields_of(rows)
    assert f.total.value == Decimal("135.86") and f.needs_review
    rows[4] = [("Balance due", 30), ("USD 135.86", 420)]
    f = fields_of(rows)
    assert f.total.value == Decimal("135.86") and not f.needs_review


def test_a_long_number_is_no_amount():
    """A total the expense could not store (14 digits at most) is never extracted."""
    f = fields_of([["Corner Shop"], [("TOTAL", 30), ("123456789012345.00 EUR", 300)]])
    assert not f.is_expense


def test_percentages_and_item_codes_are_not_the_amount():
    assert [m.value for m in amounts("VAT 20% 1.60")] == [Decimal("1.60")]
    assert [m.value for m in amounts("Tax 8.875% 3,20")] == [Decimal("3.20")]


@pytest.mark.parametrize(("text", "month_first", "expected"), [
    ("Date: 14/03/2025", False, dt.date(2025, 3, 14)),
    ("03/14/2025", False, dt.date(2025, 3, 14)),          # only month-first is a date
    ("04/03/2025", False, dt.date(2025, 3, 4)),           # day-first where both read
    ("04/03/2025", True, dt.date(2025, 4, 3)),            # month-first for USD documents
    ("14.03.25", False, dt.date(2025, 3, 14)),            # two-digit year
    ("14 Mar 2025", False, dt.date(2025, 3, 14)),
    ("14-MAR-25", False, dt.date(2025, 3, 14)),
    ("March 14, 2025", False, dt.date(2025, 3, 14)),
    ("Sept 3 2024", False, dt.date(2024, 9, 3)),
    ("DateJun212024", False, dt.date(2024, 6, 21)),       # glued by OCR
    ("0ct302024 19:01", False, dt.date(2024, 10, 30)),    # O read as a zero
    ("Receipt#46260November2024", False, None),           # a month and a year, no day
    ("November 7, 2024", False, dt.date(2024, 11, 7)),
    ("21/07/202219:02", False, dt.date(2022, 7, 21)),     # time glued to the year
    ("06/14/2109:56", True, dt.date(2021, 6, 14)),
    ("2025-03-14", False, dt.date(2025, 3, 14)),
    ("14. März 2025", False, dt.date(2025, 3, 14)),
    ("31.02.2025", False, None),
    ("Tel. 0151 234 5678", False, None),
    ("Invoice No. 2023-5317", False, None),
    ("10:42", False, None),
])
def test_dates(text, month_first, expected):
    assert parse_date(text, month_first) == expected


def test_an_ambiguous_date_is_flagged():
    assert find_dates("04/03/2025")[0].ambiguous
    assert not find_dates("14/03/2025")[0].ambiguous


def test_the_vendor_is_the_biggest_text_near_the_top():
    rows = [["Welcometo"], ["The Owl Coffee"], ["40 High Street"], ["Tel. +44 20 7946 0000"],
            ["RECEIPT"], "Date 30/05/2024", [("Latte", 30), ("€3.00", 420)],
            [("TOTAL", 30), ("€3.00", 420)]]
    assert fields_of(rows, big=(1,)).vendor.value == "The Owl Coffee"
    assert fields_of(rows, big=()).vendor.value == "The Owl Coffee"  # "Welcome to" glued
    invoice = [["Novak Engineering AG"], ["111 Kingsway"], ["INVOICE"], "Date: 2024-04-05",
               [("Software licence", 30), ("CHF 730.40", 420)],
               [("VAT 8.1%", 30), ("CHF 59.16", 420)],
               [("Total due", 30), ("CHF 789.56", 420)]]
    f = fields_of(invoice, big=(0, 2))
    assert f.vendor.value == "Novak Engineering AG"
    assert (f.total.value, f.currency.value) == (Decimal("789.56"), "CHF")


def test_an_address_is_not_the_vendor():
    rows = [["BRIGHT SPARROW"], ["30MainStreet"], ["Chicago, MA 95010"], "March 26, 2022",
            [("GRAND TOTAL", 30), ("$177.95", 420)]]
    assert fields_of(rows, big=()).vendor.value == "BRIGHT SPARROW"


def test_decimal_commas_without_a_currency_mark_are_guessed_euros_for_review():
    rows = [["Anchor Parking"], "16 Oct 2025", [("Oil change", 30), ("70,00", 420)],
            [("GRAND TOTAL", 30), ("132,41", 420)], [("incl. IVA 10%", 30), ("12,04", 420)]]
    f = fields_of(rows)
    assert f.currency.value == "EUR" and f.currency.confidence < REVIEW_BELOW
    assert f.needs_review
    dots = [[(seg[0].replace(",", "."), seg[1]) if isinstance(seg, tuple) else seg
             for seg in r] if isinstance(r, list) else r for r in rows]
    assert fields_of(dots).currency.value is None  # decimal points: no guess


def test_the_total_on_a_second_page():
    rows = CAFE[:6] + [[("Muffin", 30), ("£2.00", 420)]] * 4 + CAFE[6:]
    f = fields_of(rows, pages=2)
    assert (f.total.value, f.vendor.value) == (Decimal("10.80"), "Blue Bottle Coffee")


@pytest.mark.parametrize("rows", [
    [["Harbor News"], "Issue 12 - March 2025", "Spring sale",
     "Now only €19.99 - save 20%", "Meet the team", "Unsubscribe | www.example.org"],
    [["Golden Fork Bistro"], "MENU", "Starters", [("Soup of the day", 30), ("7.50", 420)],
     "Mains", [("Steak", 30), ("28.00", 420)], [("Tiramisu", 30), ("6.50", 420)],
     "Ask us about allergens"],
    [["Miller's Books"], "12 Elm Avenue", [("", 30), ("12 May 2024", 400)],
     "Dear Ms. Clarke,", "your membership fee of £45.00 will stay the same next year.",
     "Kind regards,", "Anna Baker"],
    [["Registration form"], "Form A-12", "Name: ______________", "Date: __/__/____",
     "Amount: ___________", "Signature: ___________",
     "Please return this form by post."],
])
def test_letters_newsletters_menus_and_forms_are_not_expenses(rows):
    f = fields_of([r for r in rows if r != [("", 30), ("12 May 2024", 400)]])
    assert not f.is_expense and f.confidence >= 0.8


def test_an_unsure_expense_needs_review():
    """No currency anywhere and the amount under its label: an expense to check."""
    rows = [["Village Deli"], "2024-02-01", [("Bread", 30), ("3.20", 420)], "TOTAL", "3.20"]
    f = fields_of(rows)
    assert f.is_expense and f.total.value == Decimal("3.20")
    assert f.currency.value is None
    analysis = Analysis(text="", engine="test", fields=f)
    expense = analysis.expense
    assert expense is not None and expense.needs_review
    assert analysis.record().needs_review
    sure = Analysis(text="", engine="test", fields=fields_of(CAFE)).expense
    assert sure is not None and not sure.needs_review and sure.confidence >= REVIEW_BELOW


def test_a_total_without_a_label_is_not_an_expense():
    rows = [["Corner Shop"], [("Apples", 30), ("2.00", 420)], [("Pears", 30), ("3.00", 420)]]
    assert not fields_of(rows).is_expense
