"""The documents service's actions: upload from a URL, analyze on creation."""

from __future__ import annotations

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
from .analysis import DocumentAnalyzer
from .model import (
    CreateDocument,
    Document,
    DocumentCreated,
    FileInfo,
    RecordAnalysis,
    create_document,
    document_created,
    documents,
    record_analysis,
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


@action(on_event(document_created), num_cpus=1)  # a Ray task per document on the RayRuntime
async def analyze_document_on_creation(event: Event[DocumentCreated], ctx: Context) -> None:
    content = await ctx.get(FileStorage).get(event.payload.key)
    analysis = ctx.get(DocumentAnalyzer).analyze(content, event.payload.content_type)
    await ctx.run(record_analysis, event.aggregate_id,
                  RecordAnalysis(text=analysis.text, is_expense=analysis.is_expense,
                                 engine=analysis.engine))
    if analysis.expense:  # the expense takes the document's id: retries stay idempotent
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
