"""The OCR benchmark's analyzer: RapidOCR that also notes which Ray node read each file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.documents.analysis import Analysis, OcrAnalyzer


class NodeNotingAnalyzer(OcrAnalyzer):
    """:class:`OcrAnalyzer`, and a line ``node-id`` per analysis in ``folder`` (a folder every
    node of a one-machine cluster sees)."""

    def __init__(self, folder: str, **options: Any) -> None:
        super().__init__(**options)
        self.folder = folder

    def analyze(self, content: bytes, content_type: str) -> Analysis:
        result = super().analyze(content, content_type)
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        with open(Path(self.folder) / f"{os.getpid()}-{id(result)}", "w") as f:
            f.write(node)
        return result
