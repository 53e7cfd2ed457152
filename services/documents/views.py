"""The ``documents`` view: one row per document and what its analysis found."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from talix_ray import Event, state_view

from .model import (
    DocumentAnalysisFailed,
    DocumentAnalyzed,
    DocumentCreated,
    document_analysis_failed,
    document_analyzed,
    document_created,
)


class DocumentRow(BaseModel):
    document_id: str
    name: str | None
    content_type: str
    status: str
    is_expense: bool | None = None
    engine: str | None = None
    pages: int | None = None
    needs_review: bool | None = None
    failure_reason: str | None = None
    created_at: dt.datetime
    analyzed_at: dt.datetime | None = None


document_rows = state_view("documents", DocumentRow, key="document_id")


@document_rows.on(document_created)
def created(row: DocumentRow | None, event: Event[DocumentCreated]) -> DocumentRow:
    p = event.payload
    return DocumentRow(document_id=event.aggregate_id, name=p.name, content_type=p.content_type,
                       status="CREATED", created_at=event.timestamp)


@document_rows.on(document_analyzed)
def analyzed(row: DocumentRow | None, event: Event[DocumentAnalyzed]) -> DocumentRow | None:
    if row is None:
        return None
    p = event.payload
    return row.model_copy(update={"status": "ANALYZED", "is_expense": p.is_expense,
                                  "engine": p.engine, "pages": p.pages,
                                  "needs_review": p.needs_review,
                                  "analyzed_at": event.timestamp})


@document_rows.on(document_analysis_failed)
def failed(row: DocumentRow | None, event: Event[DocumentAnalysisFailed]) -> DocumentRow | None:
    if row is None:
        return None
    p = event.payload
    return row.model_copy(update={"status": "FAILED", "engine": p.engine,
                                  "failure_reason": p.reason, "analyzed_at": event.timestamp})
