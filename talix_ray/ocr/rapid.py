"""The default engine: RapidOCR (PP-OCRv4 on ONNX Runtime), whose models ship in its wheel."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .base import OcrLimits, OcrLine, Point
from .engine import OcrEngine
from .glyphs import restore_symbols

if TYPE_CHECKING:
    from PIL.Image import Image


def default_threads() -> int:
    """ONNX Runtime threads: ``TALIX_OCR_THREADS``, else ``OMP_NUM_THREADS`` (which Ray sets to
    a task's ``num_cpus``), else every core up to 4."""
    for var in ("TALIX_OCR_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, min(4, os.cpu_count() or 1))


def gpu_available() -> bool:
    """Whether ONNX Runtime can use CUDA here (``onnxruntime-gpu`` and a GPU)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return ("CUDAExecutionProvider" in onnxruntime.get_available_providers()
            and onnxruntime.get_device() == "GPU")


class RapidOcrEngine(OcrEngine):
    """RapidOCR: text detection, orientation and recognition models bundled in the
    ``rapidocr-onnxruntime`` wheel (nothing is downloaded). The models load on first use; keep
    one instance per process (:func:`talix_ray.ocr.get_engine` does). Currency symbols its
    alphabet lacks (``€``, ``£``) are restored from the line images (:mod:`.glyphs`)."""

    name = "rapidocr"

    def __init__(self, limits: OcrLimits | None = None, *, threads: int | None = None,
                 use_gpu: bool | None = None, min_confidence: float = 0.5) -> None:
        super().__init__(limits)
        self.threads = threads or default_threads()
        self.use_gpu = gpu_available() if use_gpu is None else use_gpu
        self.min_confidence = min_confidence
        self._ocr: Any = None
        self._lock = threading.Lock()  # one inference at a time per engine (ORT is threaded)

    def _model(self) -> Any:
        if self._ocr is None:
            from rapidocr_onnxruntime import RapidOCR

            self._ocr = RapidOCR(intra_op_num_threads=self.threads, inter_op_num_threads=1,
                                 det_use_cuda=self.use_gpu, cls_use_cuda=self.use_gpu,
                                 rec_use_cuda=self.use_gpu, text_score=self.min_confidence)
        return self._ocr

    def warm_up(self) -> None:
        """Load the models now rather than on the first page."""
        with self._lock:
            self._model()

    def read_image(self, image: Image, page: int) -> list[OcrLine]:
        rgb = np.asarray(image.convert("RGB"))
        with self._lock:
            result, _ = self._model()(np.ascontiguousarray(rgb[:, :, ::-1]),
                                      return_word_box=True, text_score=self.min_confidence)
        gray = np.asarray(image.convert("L"))
        lines = []
        for item in result or ():
            points, text, confidence = item[0], item[1], float(item[2])
            if len(item) >= 5 and (restored := restore_symbols(gray, points, item[4],
                                                                item[3])) is not None:
                text = restored
            text = " ".join(text.split())
            if not text:
                continue
            corners = cast("tuple[Point, Point, Point, Point]",
                           tuple((float(x), float(y)) for x, y in points))
            lines.append(OcrLine(text=text, confidence=min(1.0, max(0.0, confidence)), page=page,
                                 points=corners))
        return lines
