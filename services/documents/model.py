"""Documents: uploaded files and what their analysis found (or why it could not be read)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from talix_ray import (
    AlreadyExists,
    DomainError,
    Event,
    EventStore,
    EventType,
    NewEvent,
    NotFound,
)
from talix_ray.shared.filenames import MAX_NAME_CHARS, is_safe_file_name

FailureReason = Literal["unsupported", "corrupt", "unreadable", "too_large"]


class DocumentCreated(BaseModel):
    """A file was stored and a document created for it."""

    key: str
    name: str | None = None
    content_type: str
    source_url: str | None = None


class FieldValues(BaseModel):
    """The expense fields an analysis found (``None``: not found)."""

    vendor: str | None = Field(default=None, max_length=200)
    date: dt.date | None = None
    total: Decimal | None = Field(default=None, max_digits=14, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class FieldConfidences(BaseModel):
    """How sure the analysis is of each field, and of the document being an expense, in
    [0, 1]."""

    is_expense: float = Field(default=0.0, ge=0, le=1)
    vendor: float = Field(default=0.0, ge=0, le=1)
    date: float = Field(default=0.0, ge=0, le=1)
    total: float = Field(default=0.0, ge=0, le=1)
    currency: float = Field(default=0.0, ge=0, le=1)


class DocumentAnalyzed(BaseModel):
    """The document was read; ``is_expense`` if it is a receipt or an invoice. Events written
    before OCR carry only ``text``, ``is_expense`` and ``engine``."""

    text: str
    is_expense: bool
    engine: str
    fields: FieldValues | None = None
    confidences: FieldConfidences | None = None
    needs_review: bool = False
    pages: int | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="seconds by stage")


class DocumentAnalysisFailed(BaseModel):
    """The document cannot be read: an unsupported kind of file, a damaged one, one with no
    text, or one over a limit. The story of the document ends here."""

    reason: FailureReason
    message: str
    engine: str | None = None


document_created = EventType("DOCUMENTS:DOCUMENT_CREATED", DocumentCreated)
document_analyzed = EventType("DOCUMENTS:DOCUMENT_ANALYZED", DocumentAnalyzed)
document_analysis_failed = EventType("DOCUMENTS:DOCUMENT_ANALYSIS_FAILED",
                                     DocumentAnalysisFailed)


class Document(BaseModel):
    """The current state of a document."""

    key: str
    name: str | None
    content_type: str
    status: Literal["CREATED", "ANALYZED", "FAILED"]
    created_at: dt.datetime
    is_expense: bool | None = None
    text: str | None = None
    engine: str | None = None
    pages: int | None = None
    fields: FieldValues | None = None
    confidences: FieldConfidences | None = None
    needs_review: bool = False
    failure_reason: FailureReason | None = None
    failure_message: str | None = None


def reduce(state: Document | None, event: Event[BaseModel]) -> Document | None:
    match event.payload:
        case DocumentCreated() as p:
            return Document(key=p.key, name=p.name, content_type=p.content_type,
                            status="CREATED", created_at=event.timestamp)
        case DocumentAnalyzed() as p if state is not None:
            return state.model_copy(update={
                "status": "ANALYZED", "text": p.text, "is_expense": p.is_expense,
                "engine": p.engine, "pages": p.pages, "fields": p.fields,
                "confidences": p.confidences, "needs_review": p.needs_review})
        case DocumentAnalysisFailed() as p if state is not None:
            return state.model_copy(update={
                "status": "FAILED", "engine": p.engine, "failure_reason": p.reason,
                "failure_message": p.message})
    return state


documents = EventStore("documents", [document_created, document_analyzed,
                                     document_analysis_failed], reduce)


class FileInfo(BaseModel):
    """What a document says about its file: checked before the file is stored."""

    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    content_type: str = Field(max_length=127, pattern=r"^[\w.+-]+/[\w.+-]+$")

    @field_validator("name")
    @classmethod
    def _one_safe_component(cls, v: str | None) -> str | None:
        if v is not None and not is_safe_file_name(v):
            raise ValueError("a file name is one path component of printable characters "
                             "(no separators, control or bidi characters, no leading dot)")
        return v


class CreateDocument(FileInfo):
    key: str = Field(min_length=1)
    source_url: str | None = None


@documents.command
def create_document(state: Document | None, input: CreateDocument) -> NewEvent[Any]:
    if state is not None:
        raise AlreadyExists("this document exists already")
    return document_created(**input.model_dump())


class RecordAnalysis(BaseModel):
    text: str = Field(max_length=1_000_000)
    is_expense: bool
    engine: str = Field(min_length=1, max_length=100)
    fields: FieldValues | None = None
    confidences: FieldConfidences | None = None
    needs_review: bool = False
    pages: int | None = Field(default=None, ge=0)
    timings: dict[str, float] = Field(default_factory=dict)


def _unfinished(state: Document | None) -> Document:
    if state is None:
        raise NotFound("no such document")
    if state.status == "ANALYZED":
        raise DomainError("this document is analyzed already")
    if state.status == "FAILED":
        raise DomainError("the analysis of this document has failed already")
    return state


@documents.command
def record_analysis(state: Document | None, input: RecordAnalysis) -> NewEvent[Any]:
    _unfinished(state)
    return document_analyzed(**input.model_dump())


class RecordAnalysisFailure(BaseModel):
    reason: FailureReason
    message: str = Field(min_length=1, max_length=500)
    engine: str | None = Field(default=None, max_length=100)


@documents.command
def record_analysis_failure(state: Document | None,
                            input: RecordAnalysisFailure) -> NewEvent[Any]:
    _unfinished(state)
    return document_analysis_failed(**input.model_dump())
