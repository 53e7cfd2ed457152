"""The documents service."""

from talix_ray import Service

from .actions import analyze_document_on_creation, get_document, upload_document_from_url
from .analysis import Analysis, DocumentAnalyzer, TextAnalyzer
from .model import (
    CreateDocument,
    Document,
    RecordAnalysis,
    create_document,
    document_analyzed,
    document_created,
    documents,
    record_analysis,
)
from .views import document_rows

service = Service("documents", stores=[documents],
                  actions=[upload_document_from_url, analyze_document_on_creation],
                  queries=[get_document], projections=[document_rows])

__all__ = [
    "Analysis",
    "CreateDocument",
    "Document",
    "DocumentAnalyzer",
    "RecordAnalysis",
    "TextAnalyzer",
    "create_document",
    "document_analyzed",
    "document_created",
    "document_rows",
    "documents",
    "record_analysis",
    "service",
]
