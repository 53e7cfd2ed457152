"""The documents service's actions: upload from a URL, analyze on creation."""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, HttpUrl
from pydantic import ValidationError as PydanticValidationError

from talix_ray import (
    Context,
    Downloader,
    Event,
    FileStorage,
    IdGenerator,
    NotFound,
    ValidationError,
    action,
    http,
    on_event,
    query,
)

from ..expenses import create_expense
from .analysis import Analysis, DocumentAnalyzer, UnreadableDocument
from .model import (
    CreateDocument,
    Document,
    DocumentCreated,
    FileInfo,
    RecordAnalysisFailure,
    create_document,
    document_created,
    documents,
    record_analysis,
    record_analysis_failure,
)


class UploadFromUrl(BaseModel):
    url: HttpUrl


class Uploaded(BaseModel):
    document_id: str


@action(http.post("/documents/upload-from-url"))
async def upload_document_from_url(input: UploadFromUrl, ctx: Context) -> Uploaded:
    file = await ctx.get(Downloader).fetch(input.url)  # SSRF-safe, size- and time-limited
    try:  # checked before anything is stored: a refused file leaves nothing behind
        info = FileInfo(name=file.name, content_type=file.content_type)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic("downloaded file", exc) from None
    key = await ctx.get(FileStorage).put(file.content, info.content_type)
    document_id = ctx.get(IdGenerator).new()
    await ctx.run(create_document, document_id,
                  CreateDocument(key=key, **info.model_dump(), source_url=str(input.url)))
    return Uploaded(document_id=document_id)


async def _read_document(analyzer: DocumentAnalyzer, key: str, content_type: str,
                         ctx: Context) -> Analysis:
    """The stored file read and its fields extracted, off the event loop."""
    content = await ctx.get(FileStorage).get(key)
    return await asyncio.to_thread(analyzer.analyze, content, content_type)


#: GPUs each analysis asks Ray for: 0 unless ``TALIX_OCR_GPUS`` says otherwise (set it only on
#: a cluster that has GPUs and ``onnxruntime-gpu``; the engine then runs its models on CUDA).
OCR_GPUS = float(os.environ.get("TALIX_OCR_GPUS", "0") or 0)


@action(on_event(document_created), num_cpus=1, num_gpus=OCR_GPUS)  # a Ray task per document
async def analyze_document_on_creation(event: Event[DocumentCreated], ctx: Context) -> None:
    """Read the new document (OCR), record what it says, and create its expense. A file that
    cannot be read ends in ``DocumentAnalysisFailed``: no retry, no dead letter."""
    analyzer = ctx.get(DocumentAnalyzer)
    try:  # a durable step: a retry gets the recorded analysis (or refusal) back, no new OCR
        analysis = await ctx.step("read-document", _read_document, analyzer,
                                  event.payload.key, event.payload.content_type, ctx,
                                  result_type=Analysis)
    except UnreadableDocument as exc:
        await ctx.run(record_analysis_failure, event.aggregate_id,
                      RecordAnalysisFailure(reason=exc.reason, message=exc.message[:500],
                                            engine=getattr(analyzer, "engine_name", None)))
        return
    await ctx.run(record_analysis, event.aggregate_id, analysis.record())
    if analysis.is_expense:  # the expense takes the document's id: retries stay idempotent
        await ctx.run(create_expense, event.aggregate_id,
                      analysis.expense_input(event.aggregate_id))


class DocumentId(BaseModel):
    document_id: str


@query(http.get("/documents/{document_id}"))
async def get_document(input: DocumentId, ctx: Context) -> Document:
    state = await ctx.load(documents, input.document_id)
    if state is None:
        raise NotFound(f"no document {input.document_id}")
    return state
