"""Decoding page images (PNG, JPEG, WebP, TIFF with its pages) within bounds."""

from __future__ import annotations

import io
import struct
import warnings
from typing import TYPE_CHECKING

from .base import OcrLimits, UnreadableDocument

if TYPE_CHECKING:
    from PIL.Image import Image

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/tiff": "TIFF"}


def fit(image: Image, max_side: int) -> Image:
    """``image`` in RGB, scaled down so that its longest side is at most ``max_side``."""
    from PIL import Image as PILImage

    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            flat = PILImage.new("RGB", rgba.size, "white")  # transparent = paper
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        else:
            image = image.convert("RGB")
    longest = max(image.size)
    if longest > max_side:
        scale = max_side / longest
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), PILImage.Resampling.LANCZOS)
    return image


def decode_pages(content: bytes, kind: str, limits: OcrLimits) -> list[Image]:
    """The pages of an image file, each checked against the limits before it is decoded."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    fmt = _FORMATS[kind]
    pages: list[Image] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(content), formats=[fmt]) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > limits.max_pages:
                    raise UnreadableDocument("too_large", f"the file has {frames} pages; at most "
                                             f"{limits.max_pages} are read")
                for index in range(frames):
                    im.seek(index)
                    if im.width * im.height > limits.max_pixels:
                        raise UnreadableDocument(
                            "too_large", f"page {index + 1} is {im.width}x{im.height} pixels; "
                            f"at most {limits.max_pixels} pixels are read")
                    im.load()
                    page = ImageOps.exif_transpose(im) or im  # a phone's rotated photo
                    pages.append(fit(page, limits.max_side))
    except UnreadableDocument:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise UnreadableDocument("too_large", "the image is too large to read") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            IndexError, struct.error) as exc:
        raise UnreadableDocument("corrupt", f"the {fmt} image is damaged and cannot be "
                                 "decoded") from exc
    return pages

