"""The documents service."""

from talix_ray import Service

from .actions import (
    analyze_document_on_creation,
    get_document,
    upload_document,
    upload_document_from_url,
)
from .analysis import Analysis, DocumentAnalyzer, OcrAnalyzer, TextAnalyzer
from .model import (
    CreateDocument,
    Document,
    DocumentAnalysisFailed,
    DocumentAnalyzed,
    FieldConfidences,
    FieldValues,
    RecordAnalysis,
    RecordAnalysisFailure,
    create_document,
    document_analysis_failed,
    document_analyzed,
    document_created,
    documents,
    record_analysis,
    record_analysis_failure,
)
from .views import document_rows

service = Service("documents", stores=[documents],
                  actions=[upload_document, upload_document_from_url,
                           analyze_document_on_creation],
                  queries=[get_document], projections=[document_rows])

__all__ = [
    "Analysis",
    "CreateDocument",
    "Document",
    "DocumentAnalysisFailed",
    "DocumentAnalyzed",
    "DocumentAnalyzer",
    "FieldConfidences",
    "FieldValues",
    "OcrAnalyzer",
    "RecordAnalysis",
    "RecordAnalysisFailure",
    "TextAnalyzer",
    "create_document",
    "document_analysis_failed",
    "document_analyzed",
    "document_created",
    "document_rows",
    "documents",
    "record_analysis",
    "record_analysis_failure",
    "service",
    "upload_document",
    "upload_document_from_url",
]
