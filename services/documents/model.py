"""Documents: uploaded files and what their analysis found."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from talix_ray import AlreadyExists, DomainError, Event, EventStore, EventType, NotFound
from talix_ray.shared.filenames import MAX_NAME_CHARS, is_safe_file_name


class DocumentCreated(BaseModel):
    """A file was stored and a document created for it."""

    key: str
    name: str | None = None
    content_type: str
    source_url: str | None = None


class DocumentAnalyzed(BaseModel):
    """Text was read from the document; ``is_expense`` if it looks like a receipt."""

    text: str
    is_expense: bool
    engine: str


document_created = EventType("DOCUMENTS:DOCUMENT_CREATED", DocumentCreated)
document_analyzed = EventType("DOCUMENTS:DOCUMENT_ANALYZED", DocumentAnalyzed)


class Document(BaseModel):
    """The current state of a document."""

    key: str
    name: str | None
    content_type: str
    status: Literal["CREATED", "ANALYZED"]
    created_at: datetime
    is_expense: bool | None = None
    text: str | None = None


def reduce(state: Document | None, event: Event) -> Document | None:
    match event.payload:
        case DocumentCreated() as p:
            return Document(key=p.key, name=p.name, content_type=p.content_type,
                            status="CREATED", created_at=event.timestamp)
        case DocumentAnalyzed(text=text, is_expense=is_expense) if state is not None:
            return state.model_copy(update={"status": "ANALYZED", "text": text,
                                            "is_expense": is_expense})
    return state


documents = EventStore("documents", [document_created, document_analyzed], reduce)


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
def create_document(state: Document | None, input: CreateDocument):
    if state is not None:
        raise AlreadyExists("this document exists already")
    return document_created(**input.model_dump())


class RecordAnalysis(BaseModel):
    text: str = Field(max_length=1_000_000)
    is_expense: bool
    engine: str


@documents.command
def record_analysis(state: Document | None, input: RecordAnalysis):
    if state is None:
        raise NotFound("no such document")
    if state.status == "ANALYZED":
        raise DomainError("this document is analyzed already")
    return document_analyzed(**input.model_dump())
