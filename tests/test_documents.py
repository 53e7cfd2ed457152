"""The example domain: documents and expenses, on the testkit."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.documents import (
    CreateDocument,
    RecordAnalysis,
    create_document,
    document_analyzed,
    document_created,
    documents,
    record_analysis,
)
from services.documents.actions import get_document, upload_document_from_url
from services.documents.analysis import extract_expense, parse_amount, parse_date
from services.expenses import (
    ApproveExpense,
    CreateExpense,
    approve_expense,
    create_expense,
    expense_created,
    expenses,
)
from talix_ray import (
    AlreadyExists,
    DomainError,
    Downloader,
    NotFound,
    SequentialIds,
    Testkit,
    ValidationError,
)

RECEIPT = """Blue Bottle Coffee
123 Main Street
Date: 14.03.2025
Cappuccino      4.80
Croissant       3.20
TOTAL EUR       8.00
Thank you for your visit - receipt #991
"""

LETTER = """Dear customer,
we are happy to announce our new opening hours.
See you soon!
"""


def test_a_document_is_created_once(testkit):
    new = CreateDocument(key="k", content_type="image/png")
    testkit.given().when(create_document, "doc-1", new).then_events(document_created)
    (testkit.given(document_created(key="k", content_type="image/png"))
        .when(create_document, "doc-1", new)
        .then_error(AlreadyExists))


def test_analysis_needs_a_document_and_happens_once(testkit):
    analysis = RecordAnalysis(text="hi", is_expense=False, engine="text")
    testkit.given().when(record_analysis, "d", analysis).then_error(NotFound)
    (testkit.given(document_created(key="k", content_type="text/plain"))
        .when(record_analysis, "d", analysis)
        .then_events(document_analyzed(text="hi", is_expense=False, engine="text"))
        .then_state(lambda s: s.status == "ANALYZED" and s.text == "hi"))
    (testkit.given(document_created(key="k", content_type="text/plain"),
                   document_analyzed(text="x", is_expense=False, engine="text"))
        .when(record_analysis, "d", analysis)
        .then_error(DomainError, match="analyzed already"))


def test_expense_rules(testkit):
    good = CreateExpense(document_id="d", amount=Decimal("8.00"), currency="EUR")
    testkit.given().when(create_expense, "d", good).then_events(expense_created)
    testkit.given().when(create_expense, "d", {"document_id": "d", "amount": "-1",
                                                "currency": "EUR"}) \
        .then_error(ValidationError, match="field 'amount'")
    testkit.given().when(create_expense, "d", {"document_id": "d", "amount": "1",
                                                "currency": "euro"}) \
        .then_error(ValidationError, match="field 'currency'")
    created = expense_created(document_id="d", amount=Decimal(8), currency="EUR")
    (testkit.given(created).when(approve_expense, "d", ApproveExpense(approved_by="ann"))
        .then_state(lambda s: s.status == "APPROVED" and s.approved_by == "ann"))


def test_the_testkit_fails_loudly_when_expectations_are_wrong(testkit):
    new = CreateDocument(key="k", content_type="image/png")
    with pytest.raises(AssertionError, match="expected AlreadyExists, the command succeeded"):
        testkit.given().when(create_document, "d", new).then_error(AlreadyExists)
    with pytest.raises(AssertionError, match="expected DOCUMENTS:DOCUMENT_ANALYZED"):
        testkit.given().when(create_document, "d", new).then_events(document_analyzed)
    with pytest.raises(AssertionError, match="expected success"):
        (testkit.given(document_created(key="k", content_type="image/png"))
            .when(create_document, "d", new).then_events(document_created))


@pytest.mark.parametrize(("text", "expected"), [
    ("TOTAL 1,234.56 USD", Decimal("1234.56")),
    ("Summe 1.234,56 €", Decimal("1234.56")),
    ("Total: 12,50", Decimal("12.50")),
    ("Total 7", Decimal("7.00")),
    ("nothing", None),
])
def test_amounts(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("on 2025-03-14", dt.date(2025, 3, 14)),
    ("Datum 14.03.2025", dt.date(2025, 3, 14)),
    ("03/25/2025", dt.date(2025, 3, 25)),
    ("14 March 2025", dt.date(2025, 3, 14)),
    ("Mar 14, 2025", dt.date(2025, 3, 14)),
    ("31.02.2025", None),
])
def test_dates(text, expected):
    assert parse_date(text) == expected


def test_expense_fields_are_extracted_from_a_receipt():
    fields = extract_expense(RECEIPT)
    assert fields is not None
    assert fields.vendor == "Blue Bottle Coffee"
    assert fields.date == dt.date(2025, 3, 14)
    assert fields.amount == Decimal("8.00") and fields.currency == "EUR"
    assert extract_expense(LETTER) is None


# -- upload from a URL, end to end, against a real HTTP server on loopback ---------------------
class _Files(BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, str]] = {
        "/receipt.txt": (RECEIPT.encode(), "text/plain; charset=utf-8"),
        "/letter.txt": (LETTER.encode(), "text/plain"),
        "/big.txt": (b"x" * 5000, "text/plain"),
        "/bad-type.txt": (LETTER.encode(), "text/<script>"),
    }

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/receipt.txt")
            self.end_headers()
            return
        if self.path.startswith("/n/"):  # any name: the letter
            self.path = "/letter.txt"
        body, ctype = self.files.get(self.path, (b"", ""))
        self.send_response(200 if ctype else 404)
        self.send_header("Content-Type", ctype or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def file_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def kit():
    from services import documents as docs
    from services import expenses as exps
    from services.documents import DocumentAnalyzer, TextAnalyzer
    from talix_ray import IdGenerator

    k = (Testkit(docs.service, exps.service)
         .register(DocumentAnalyzer, TextAnalyzer())
         .register(IdGenerator, SequentialIds("doc"))
         .register(Downloader, Downloader(allow=["127.0.0.1/32"], max_bytes=4096)))
    yield k
    k.close()


def test_upload_analyze_and_create_an_expense(kit, file_server):
    out = kit.call(upload_document_from_url, {"url": f"{file_server}/receipt.txt"})
    assert out.document_id == "doc-1"
    kit.settle()
    doc = kit.state(documents, "doc-1")
    assert doc.status == "ANALYZED" and doc.is_expense and doc.name == "receipt.txt"
    expense = kit.state(expenses, "doc-1")
    assert expense.amount == Decimal("8.00") and expense.vendor == "Blue Bottle Coffee"
    assert kit.query(get_document, {"document_id": "doc-1"}).status == "ANALYZED"

    out = kit.call(upload_document_from_url, {"url": f"{file_server}/letter.txt"})
    kit.settle()
    assert kit.state(documents, out.document_id).is_expense is False
    assert kit.state(expenses, out.document_id) is None

    out = kit.call(upload_document_from_url, {"url": f"{file_server}/redirect"})
    kit.settle()
    assert kit.state(expenses, out.document_id).amount == Decimal("8.00")
    assert kit.deadletters() == []


def test_bad_uploads_are_refused_and_change_nothing(kit, file_server):
    with pytest.raises(ValidationError, match="field 'url'"):
        kit.call(upload_document_from_url, {"url": "not a url"})
    with pytest.raises(ValidationError, match=r"file too large: more than 4096 bytes"):
        kit.call(upload_document_from_url, {"url": f"{file_server}/big.txt"})
    with pytest.raises(ValidationError, match=r"^URL not allowed$"):  # the 404 is not echoed
        kit.call(upload_document_from_url, {"url": f"{file_server}/missing"})
    assert kit.runtime.journal is not None
    page = kit._run(kit.runtime.list_aggregate_ids(documents))
    assert page.ids == []


def test_a_refused_download_stores_no_file(file_server):
    """Name and content type are checked before the file is stored: no orphan file."""
    from services import documents as docs
    from talix_ray import FileStorage, MemoryFileStorage

    files = MemoryFileStorage()
    kit = (Testkit(docs.service).register(FileStorage, files)
           .register(Downloader, Downloader(allow=["127.0.0.1/32"])))
    try:
        with pytest.raises(ValidationError, match="field 'content_type'"):
            kit.call(upload_document_from_url, {"url": f"{file_server}/bad-type.txt"})
        assert files._files == {}
        assert kit._run(kit.runtime.list_aggregate_ids(documents)).ids == []
    finally:
        kit.close()


def test_names_taken_from_urls_are_sanitized_before_they_reach_an_event(kit, file_server):
    raw = "%E2%80%AE" + "x" * 300 + "%0D%0AX-Injected:%20yes%2F..%5C.txt"
    out = kit.call(upload_document_from_url, {"url": f"{file_server}/n/{raw}"})
    name = kit.state(documents, out.document_id).name
    assert name is not None and len(name) <= 200 and name.endswith(".txt")
    assert not any(c in name for c in "\u202e\r\n/\\:"), name
    event = kit.events(documents, out.document_id)[0]
    assert event.payload.name == name


def test_file_info_refuses_unsafe_names():
    from services.documents.model import FileInfo

    for bad in ("../x", "a/b", "x\r\ny", "\u202eexe.txt", ".hidden", "x" * 201):
        with pytest.raises(Exception, match="name"):
            FileInfo(name=bad, content_type="text/plain")
    assert FileInfo(name="receipt (1).pdf", content_type="application/pdf").name


async def test_the_downloader_refuses_internal_targets(file_server):
    strict = Downloader()
    for url in [f"{file_server}/receipt.txt", "http://localhost/x", "http://10.0.0.1/x",
                "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x",
                "file:///etc/passwd", "ftp://example.com/x", "gopher://x"]:
        with pytest.raises(ValidationError, match=r"^URL not allowed$"):
            await strict.check_url(url)
