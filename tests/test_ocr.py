"""Real OCR (RapidOCR, Tesseract where installed) on generated receipts in every format,
PDFs with and without a text layer, bad files, and the analysis flow on the testkit."""

from __future__ import annotations

import io
import random
import shutil
import socket
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from services.documents import receipts
from services.documents.extraction import extract_fields
from services.documents.receipts import generate_one, same_vendor
from talix_ray.ocr import (
    OcrLimits,
    UnreadableDocument,
    create_engine,
    get_engine,
)

SEED = 20240611  # the benchmark uses another


@pytest.fixture(scope="module")
def engine():
    return get_engine()


def _doc(kind: str, fmt: str, seed: int = SEED, pages: int = 1):
    return generate_one(random.Random(seed), kind, fmt, pages=pages, name=f"t-{kind}")


def _assert_fields(doc, result) -> None:
    fields = extract_fields(result)
    truth = doc.truth
    assert fields.is_expense == truth.is_expense, fields.summary()
    if truth.is_expense:
        assert fields.total.value == truth.total, fields.summary()
        assert fields.currency.value == truth.currency, fields.summary()
        assert fields.date.value == truth.date, fields.summary()
        assert same_vendor(fields.vendor.value, truth.vendor), fields.summary()


def test_nothing_is_downloaded_models_ship_in_the_wheel(monkeypatch):
    """A fresh engine loads its models and reads a page with every non-loopback connection
    refused: the models are files inside the installed package."""
    import rapidocr_onnxruntime

    real_connect = socket.socket.connect
    attempts: list[object] = []

    def guard(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost")
                                      or host.startswith("/")):
            return real_connect(self, address)
        attempts.append(address)
        raise OSError(f"network access blocked in this test: {address}")

    def no_dns(*args, **kwargs):
        attempts.append(args[0] if args else kwargs)
        raise OSError("DNS blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    models = rapidocr_onnxruntime.__path__[0]
    fresh = create_engine("rapidocr")
    doc = _doc("receipt", "png")
    result = fresh.read(doc.content, doc.content_type)
    assert result.lines and attempts == []
    shipped = sorted(p.name for p in Path(models, "models").glob("*.onnx"))
    assert len(shipped) == 3, shipped  # detection, orientation, recognition


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_receipts_in_each_image_format(engine, fmt):
    doc = _doc("receipt", fmt, SEED + {"png": 0, "jpeg": 1, "webp": 2}[fmt])
    result = engine.read(doc.content, doc.content_type)
    assert result.engine == "rapidocr" and result.page_count == 1
    assert result.content_type == doc.content_type
    assert {"decode", "ocr", "total"} <= result.timings.keys()
    assert all(0 <= line.confidence <= 1 for line in result.lines)
    _assert_fields(doc, result)


def test_a_multi_page_tiff_is_read_page_by_page(engine):
    doc = _doc("receipt", "tiff", SEED + 3, pages=2)
    result = engine.read(doc.content, doc.content_type)
    assert result.page_count == 2
    assert {line.page for line in result.lines} == {0, 1}
    _assert_fields(doc, result)


def test_a_pdf_with_a_text_layer_is_read_without_ocr(engine):
    doc = _doc("invoice", "pdf", SEED + 4)
    result = engine.read(doc.content, "application/pdf")
    assert result.engine == "text-layer" and "ocr" not in result.timings
    assert result.pages[0].source == "text-layer"
    x0, y0, x1, y1 = result.lines[0].box
    assert 0 <= x0 < x1 <= result.pages[0].width and 0 <= y0 < y1 <= result.pages[0].height
    _assert_fields(doc, result)


def test_a_scanned_pdf_is_rendered_and_read(engine):
    doc = _doc("receipt", "pdf-scan", SEED + 5)
    result = engine.read(doc.content, "application/pdf")
    assert result.engine == "rapidocr" and result.pages[0].source == "ocr"
    _assert_fields(doc, result)


def test_a_letter_is_read_and_is_not_an_expense(engine):
    doc = _doc("letter", "jpeg", SEED + 6)
    result = engine.read(doc.content, doc.content_type)
    assert len(result.lines) > 5
    assert not extract_fields(result).is_expense


def test_plain_text_is_taken_as_it_is(engine):
    result = engine.read(b"Blue Bottle Coffee\nDate: 14.03.2025\nTOTAL EUR 8,00\n",
                         "text/plain; charset=utf-8")
    assert result.engine == "text" and result.lines[0].text == "Blue Bottle Coffee"
    fields = extract_fields(result)
    assert fields.total.value == Decimal("8.00") and fields.currency.value == "EUR"


def _png(size=(40, 20)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, "PNG")
    return buf.getvalue()


def _gif() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (10, 10), "white").save(buf, "GIF")
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(("content", "content_type", "reason", "match"), [
    (b"", "image/png", "corrupt", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", "corrupt", "damaged"),
    (_png()[:60], "image/png", "corrupt", "damaged"),
    (b"not an image at all", "image/jpeg", "corrupt", "not a valid image/jpeg"),
    (b"%PDF-1.4\n garbage", "application/pdf", "corrupt", "PDF is damaged"),
    (_gif(), "image/gif", "unsupported", "image/gif documents are not supported"),
    (_zip(), "application/zip", "unsupported", "not supported"),
    (_zip(), "application/octet-stream", "unsupported", "not recognised"),
    (b"<html></html>", "text/html", "unsupported", "text/html"),
    (b"\x00\x01binary", "text/plain", "corrupt", "not text"),
    (b"   \n\n", "text/plain", "unreadable", "empty"),
])
def test_bad_files_are_refused_with_a_reason(engine, content, content_type, reason, match):
    with pytest.raises(UnreadableDocument, match=match) as info:
        engine.read(content, content_type)
    assert info.value.reason == reason
    assert info.value.status == 422 and info.value.to_problem()["reason"] == reason
    rebuilt = UnreadableDocument.__new__(UnreadableDocument)  # as a replayed step rebuilds it
    Exception.__init__(rebuilt, info.value.message)
    rebuilt.details = {"reason": reason}
    assert rebuilt.reason == reason


def test_a_blank_image_has_no_lines(engine):
    assert engine.read(_png((200, 100)), "image/png").lines == []


def test_limits_refuse_large_files_before_decoding_them():
    small = create_engine("rapidocr", limits=OcrLimits(max_bytes=100, max_pixels=500,
                                                       max_pages=1))
    with pytest.raises(UnreadableDocument, match="larger than 100 bytes") as info:
        small.read(b"x" * 101, "text/plain")
    assert info.value.reason == "too_large"
    with pytest.raises(UnreadableDocument, match="at most 500 pixels"):
        create_engine("rapidocr", limits=OcrLimits(max_pixels=500)).read(_png(), "image/png")
    scan = _doc("receipt", "pdf-scan", SEED, pages=2)
    with pytest.raises(UnreadableDocument, match="2 pages; at most 1"):
        create_engine("rapidocr", limits=OcrLimits(max_pages=1)).read(scan.content,
                                                                       scan.content_type)


def test_a_png_labelled_jpeg_is_read_for_what_it_is(engine):
    doc = _doc("receipt", "png", SEED)
    assert engine.read(doc.content, "image/jpeg").content_type == "image/png"
    assert engine.read(doc.content, "application/octet-stream").content_type == "image/png"


def test_the_engine_is_created_once_per_process(engine):
    assert get_engine() is engine
    assert engine._ocr is not None  # loaded by the reads above, kept
    assert engine.threads >= 1


@pytest.mark.skipif(shutil.which("tesseract") is None,
                    reason="the tesseract binary is not installed (apt-get install tesseract-ocr)")
def test_tesseract_reads_a_receipt():
    doc = _doc("receipt", "png", SEED + 7)
    result = get_engine("tesseract").read(doc.content, doc.content_type)
    assert result.engine == "tesseract" and result.lines
    fields = extract_fields(result)
    assert fields.is_expense and fields.total.value == doc.truth.total


def test_the_generator_is_seeded():
    a = [d.truth for d in receipts.generate(6, 5)]
    b = [d.truth for d in receipts.generate(6, 5)]
    c = [d.truth for d in receipts.generate(6, 6)]
    assert a == b and a != c
    kinds = {d.truth.kind for d in receipts.generate(40, 1, formats=("pdf",))}
    assert {"receipt", "invoice"} <= kinds and kinds & {"letter", "newsletter", "menu", "form"}
    currencies = {d.truth.currency for d in receipts.generate(40, 1, formats=("pdf",))}
    assert {"EUR", "USD", "GBP", "CHF"} <= currencies


def test_currency_symbols_missing_from_the_recognizer_are_restored(engine):
    """PP-OCRv4's alphabet has no € or £: the engine restores them from the line images,
    and leaves look-alike letters in words alone."""
    import os

    from PIL import Image, ImageDraw, ImageFont

    fonts = os.path.join(receipts.font_dir())
    texts = ["TOTAL 8,00 €", "Total £12.50", "€ 5,60", "12.50 £", "Cafe 12", "Left 3"]
    image = Image.new("RGB", (900, 60 + 40 * len(texts)), "white")
    draw = ImageDraw.Draw(image)
    for col, name in enumerate(["DejaVuSerif-Bold.ttf", "STIXGeneral.ttf"]):
        font = ImageFont.truetype(os.path.join(fonts, name), 24)
        for row, text in enumerate(texts):
            draw.text((30 + 450 * col, 20 + 40 * row), text, font=font, fill="black")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    read = [line.text for line in engine.read(buf.getvalue(), "image/png").lines]
    squeezed = sorted(t.replace(" ", "") for t in read)
    assert squeezed == sorted(t.replace(" ", "") for t in texts * 2), read


# -- the analysis flow on the testkit (LocalRuntime, real OCR) ---------------------------------
@pytest.fixture
def ocr_kit():
    from services import documents as docs
    from services import expenses as exps
    from services.documents import DocumentAnalyzer, OcrAnalyzer
    from talix_ray import FileStorage, MemoryFileStorage, Testkit

    storage = MemoryFileStorage()
    kit = (Testkit(docs.service, exps.service)
           .register(DocumentAnalyzer, OcrAnalyzer())
           .register(FileStorage, storage))
    kit.storage = storage  # type: ignore[attr-defined]
    yield kit
    kit.close()


def _upload(kit, doc_id: str, content: bytes, content_type: str) -> None:
    from services.documents import CreateDocument, create_document

    key = kit._run(kit.storage.put(content, content_type))
    kit.run(create_document, doc_id, CreateDocument(key=key, content_type=content_type))


def test_a_receipt_becomes_an_analyzed_document_and_an_expense(ocr_kit):
    from services.documents import document_analyzed, documents
    from services.expenses import expenses

    doc = _doc("receipt", "jpeg", SEED + 1)
    _upload(ocr_kit, "r1", doc.content, doc.content_type)
    letter = _doc("letter", "jpeg", SEED + 6)
    _upload(ocr_kit, "l1", letter.content, letter.content_type)
    ocr_kit.settle(120)
    analyzed = ocr_kit.events(documents, "r1")[-1]
    assert analyzed.type == document_analyzed.name
    p = analyzed.payload
    assert p.engine == "rapidocr" and p.pages == 1 and p.timings["ocr"] > 0
    assert p.fields.total == doc.truth.total and p.fields.currency == doc.truth.currency
    assert p.confidences.total > 0.5 and 0 < p.confidences.is_expense <= 1
    state = ocr_kit.state(documents, "r1")
    assert state.status == "ANALYZED" and state.is_expense and state.fields == p.fields
    expense = ocr_kit.state(expenses, "r1")
    assert expense.amount == doc.truth.total and expense.currency == doc.truth.currency
    assert expense.date == doc.truth.date and same_vendor(expense.vendor, doc.truth.vendor)
    assert expense.needs_review is False and expense.confidence >= 0.6
    assert ocr_kit.state(documents, "l1").is_expense is False
    assert ocr_kit.state(expenses, "l1") is None
    assert ocr_kit.deadletters() == []


def test_bad_files_end_in_document_analysis_failed_without_a_dead_letter(ocr_kit):
    from services.documents import (
        RecordAnalysis,
        document_analysis_failed,
        documents,
        record_analysis,
    )
    from talix_ray import DomainError

    good = _doc("receipt", "png", SEED)
    _upload(ocr_kit, "corrupt", good.content[: len(good.content) // 3], "image/png")
    _upload(ocr_kit, "zip", _zip(), "application/zip")
    _upload(ocr_kit, "blank", _png((300, 200)), "image/png")
    ocr_kit.settle(60)
    for doc_id, reason in (("corrupt", "corrupt"), ("zip", "unsupported"),
                           ("blank", "unreadable")):
        last = ocr_kit.events(documents, doc_id)[-1]
        assert last.type == document_analysis_failed.name, doc_id
        assert last.payload.reason == reason and last.payload.message
        state = ocr_kit.state(documents, doc_id)
        assert state.status == "FAILED" and state.failure_reason == reason
    assert ocr_kit.deadletters() == []
    with pytest.raises(DomainError, match="failed already"):  # the story has ended
        ocr_kit.run(record_analysis, "zip", RecordAnalysis(text="x", is_expense=False,
                                                            engine="t"))


def test_an_unsure_expense_is_created_for_review(ocr_kit):
    from services.expenses import expenses

    text = b"Village Deli\n2024-02-01\nBread        3.20\nTOTAL\n3.20\n"  # no currency
    _upload(ocr_kit, "unsure", text, "text/plain")
    ocr_kit.settle(30)
    expense = ocr_kit.state(expenses, "unsure")
    assert expense.amount == Decimal("3.20") and expense.needs_review is True


def test_the_analyzer_travels_small_to_ray_workers(engine):
    """The analyzer is pickled into each Ray task: it carries the engine's name, not the
    loaded models, and each worker process loads them once."""
    import pickle

    from services.documents import OcrAnalyzer

    analyzer = OcrAnalyzer()
    assert analyzer.engine is engine
    copy = pickle.loads(pickle.dumps(analyzer))
    assert len(pickle.dumps(analyzer)) < 1000 and copy.engine is engine


def test_a_retried_analysis_reads_the_file_once_and_creates_one_expense():
    """The first attempt fails after the OCR step (the expense command is unavailable once):
    the retry replays the recorded analysis instead of reading the file again."""
    from services import documents as docs
    from services import expenses as exps
    from services.documents import DocumentAnalyzer, OcrAnalyzer, documents
    from services.expenses import expenses
    from talix_ray import FileStorage, MemoryFileStorage, Testkit, Unavailable

    class CountingAnalyzer(OcrAnalyzer):
        reads = 0

        def read(self, content, content_type):
            CountingAnalyzer.reads += 1
            return super().read(content, content_type)

    failed: list[str] = []

    async def unavailable_once(invocation, call_next):
        if invocation.kind == "command" and invocation.name.endswith("create_expense") \
                and not failed:
            failed.append(invocation.name)
            raise Unavailable("the expenses shard is restarting")
        return await call_next()

    storage = MemoryFileStorage()
    kit = (Testkit(docs.service, exps.service)
           .register(DocumentAnalyzer, CountingAnalyzer())
           .register(FileStorage, storage)
           .use(unavailable_once))
    kit.storage = storage  # type: ignore[attr-defined]
    try:
        doc = _doc("receipt", "webp", SEED + 2)
        _upload(kit, "retried", doc.content, doc.content_type)
        kit.settle(120)
        assert len(failed) == 1                      # the first attempt did fail
        assert CountingAnalyzer.reads == 1           # the retry did not read the file again
        assert kit.state(expenses, "retried").amount == doc.truth.total
        assert [e.type for e in kit.events(documents, "retried")][-1].endswith("ANALYZED")
        assert len(kit.events(expenses, "retried")) == 1
        assert kit.deadletters() == []
    finally:
        kit.close()


def test_accuracy_parts_merge_into_the_whole():
    """The benchmark shares accuracy between processes: the parts' merge is the whole run."""
    from services.documents.receipts import AccuracyReport, accuracy

    whole = accuracy(4, 31337)
    parts = [accuracy(4, 31337, part=(i, 2)) for i in range(2)]
    merged = AccuracyReport.merge(parts)
    assert [p.documents for p in parts] == [2, 2]
    assert (merged.documents, merged.expenses, merged.pages) == \
        (whole.documents, whole.expenses, whole.pages)
    assert merged.field_accuracy == whole.field_accuracy
    assert merged.by_field == whole.by_field and sorted(merged.misses) == sorted(whole.misses)
    with pytest.raises(ValueError, match="part"):
        accuracy(4, 31337, part=(2, 2))
