"""The example application as Serve replicas run it, with one test hook: an analyzer that
kills its own worker process the first time it reads a file the test marked (a real crash
mid-task, not an exception), so the retried analysis can be checked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from services.app import build_runtime
from services.documents import OcrAnalyzer
from talix_ray import Runtime


class CrashOnceAnalyzer(OcrAnalyzer):
    """RapidOCR, except that reading a file whose sha256 has a ``crash-{sha}`` marker in
    ``TALIX_TEST_CRASH_DIR`` renames the marker to ``crashed-{sha}`` and exits the process."""

    def read(self, content, content_type):  # type: ignore[no-untyped-def]
        folder = os.environ.get("TALIX_TEST_CRASH_DIR")
        if folder:
            sha = hashlib.sha256(content).hexdigest()
            marker = Path(folder) / f"crash-{sha}"
            try:
                marker.rename(Path(folder) / f"crashed-{sha}")
            except FileNotFoundError:
                pass
            else:
                os._exit(1)  # the worker dies mid-task
        return super().read(content, content_type)


def build_ray_runtime() -> Runtime:
    """The example on Ray, with the crash hook."""
    return build_runtime(ray=True, analyzer=CrashOnceAnalyzer())
