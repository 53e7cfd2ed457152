"""A second engine: the ``tesseract`` command, where it is installed (``apt-get install
tesseract-ocr``). Each page goes to ``tesseract - - tsv`` and the words come back grouped
into lines."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from .base import OcrLimits, OcrLine, UnreadableDocument
from .engine import OcrEngine

if TYPE_CHECKING:
    from PIL.Image import Image


def tesseract_binary() -> str | None:
    """The path of the ``tesseract`` command, ``None`` when it is not installed."""
    return shutil.which("tesseract")


class TesseractEngine(OcrEngine):
    """Tesseract through its command line (``lang`` and page segmentation mode ``psm``)."""

    name = "tesseract"

    def __init__(self, limits: OcrLimits | None = None, *, lang: str = "eng", psm: int = 4,
                 timeout: float = 60.0, threads: int = 1) -> None:
        super().__init__(limits)
        binary = tesseract_binary()
        if binary is None:
            raise RuntimeError("the tesseract command is not installed")
        self.binary, self.lang, self.psm = binary, lang, psm
        self.timeout, self.threads = timeout, threads

    def read_image(self, image: Image, page: int) -> list[OcrLine]:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        try:
            done = subprocess.run(
                [self.binary, "-", "-", "-l", self.lang, "--psm", str(self.psm), "tsv"],
                input=buf.getvalue(), capture_output=True, timeout=self.timeout, check=False,
                env={**os.environ, "OMP_THREAD_LIMIT": str(self.threads)})
        except subprocess.TimeoutExpired as exc:
            raise UnreadableDocument("unreadable", "reading the page took too long") from exc
        if done.returncode != 0:
            raise UnreadableDocument("unreadable", "tesseract could not read the page")
        words: dict[tuple[str, ...], list[dict[str, str]]] = {}
        reader = csv.DictReader(io.StringIO(done.stdout.decode("utf-8", "replace")),
                                delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            if row.get("level") == "5" and (row.get("text") or "").strip():
                key = (row["block_num"], row["par_num"], row["line_num"])
                words.setdefault(key, []).append(row)
        lines = []
        for group in words.values():
            x0 = min(int(w["left"]) for w in group)
            y0 = min(int(w["top"]) for w in group)
            x1 = max(int(w["left"]) + int(w["width"]) for w in group)
            y1 = max(int(w["top"]) + int(w["height"]) for w in group)
            confs = [max(0.0, float(w["conf"])) / 100 for w in group]
            lines.append(OcrLine.from_box(" ".join(w["text"].strip() for w in group),
                                          x0, y0, x1, y1, sum(confs) / len(confs), page))
        lines.sort(key=lambda ln: (ln.box[1], ln.box[0]))
        return lines
