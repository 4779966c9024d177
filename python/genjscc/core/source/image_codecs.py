"""Classic image codecs as the source coder of the separation baseline (docs/jscc.md).

Four codecs, best first at low rates: ``"heif"`` (HEVC intra in HEIF, pillow-heif: the nearest
available relative of VTM and BPG), ``"jpeg2000"``, ``"webp"`` and ``"jpeg"`` (Pillow). Images
are float ``[3, H, W]`` in [0, 1] (8-bit RGB / 255), as in :mod:`genjscc.core.jscc.images`.

:func:`encode_to_budget` finds the highest quality whose file fits a byte budget (bisection on
the codec's quality setting; JPEG 2000 is asked for the exact rate and stepped down if it
overshoots), which is what a transmitter does once the link adaptation has fixed the payload.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from genjscc.errors import GenjsccError

__all__ = ["CODECS", "EncodedImage", "decode_image", "encode_image", "encode_to_budget"]

CODECS = ("heif", "jpeg2000", "webp", "jpeg")

# quality range (lowest, highest) searched by encode_to_budget, per codec
_QUALITY = {"heif": (0, 100), "webp": (0, 100), "jpeg": (1, 95)}


@dataclass(frozen=True)
class EncodedImage:
    """A coded image: ``data`` (the file bytes), ``codec``, ``quality`` (the codec's setting;
    for JPEG 2000 the compression ratio asked for) and ``bpp`` (bits per pixel)."""

    data: bytes
    codec: str
    quality: float
    bpp: float


def _check_codec(codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"unknown image codec {codec!r}; choose one of {', '.join(CODECS)}")
    return codec


def _to_pil(image: torch.Tensor):
    from PIL import Image

    if not (isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3):
        raise ValueError("image must be a float tensor [3, H, W] in [0, 1]")
    arr = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(arr.cpu().numpy())


def _heif_ready() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


def encode_image(image: torch.Tensor, codec: str, quality: float) -> bytes:
    """The file bytes of ``image`` coded by ``codec`` at ``quality`` (codec-specific scale:
    0..100 for HEIF/WebP, 1..95 for JPEG, compression ratio for JPEG 2000)."""
    codec = _check_codec(codec)
    pil = _to_pil(image)
    buf = io.BytesIO()
    if codec == "heif":
        _heif_ready()
        pil.save(buf, format="HEIF", quality=int(quality))
    elif codec == "jpeg2000":
        pil.save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[float(quality)],
                 irreversible=True)
    elif codec == "webp":
        pil.save(buf, format="WEBP", quality=int(quality), method=4)
    else:
        pil.save(buf, format="JPEG", quality=int(quality), optimize=True)
    return buf.getvalue()


def decode_image(data: bytes, codec: str) -> torch.Tensor:
    """Decode file bytes of ``codec`` to float ``[3, H, W]``; GenjsccError if they are corrupt."""
    from PIL import Image

    codec = _check_codec(codec)
    if codec == "heif":
        _heif_ready()
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # any decoder failure of a corrupt file is a user-visible error
        raise GenjsccError(f"cannot decode {codec} data ({len(data)} bytes): {err}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def _bisect(fits: Callable[[int], bytes | None], lo: int, hi: int) -> tuple[int, bytes] | None:
    """Highest integer q in [lo, hi] whose encoding fits (fits monotone in q)."""
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = fits(mid)
        if data is not None:
            best, lo = (mid, data), mid + 1
        else:
            hi = mid - 1
    return best


def encode_to_budget(image: torch.Tensor, codec: str, max_bytes: int,
                     cache: dict | None = None) -> EncodedImage | None:
    """The best-quality encoding of ``image`` by ``codec`` within ``max_bytes``; None when
    even the lowest quality does not fit.

    ``cache`` (a dict, one per image and codec) keeps the files of the qualities tried, so
    that searches for several budgets of the same image encode each quality once.
    """
    cache = {} if cache is None else cache
    codec = _check_codec(codec)
    pixels = image.shape[1] * image.shape[2]
    if max_bytes <= 0:
        return None
    if codec == "jpeg2000":
        raw = 3 * pixels
        # ask for the exact rate (a few hundred bytes go to headers, so start a little lower)
        ratio = max(raw / max(max_bytes - 200, 1), 1.0)
        for _ in range(12):
            data = encode_image(image, codec, ratio)
            if len(data) <= max_bytes:
                return EncodedImage(data, codec, ratio, 8 * len(data) / pixels)
            ratio *= 1.1 * len(data) / max_bytes
        return None
    lo, hi = _QUALITY[codec]

    def fits(q: int) -> bytes | None:
        if q not in cache:
            cache[q] = encode_image(image, codec, q)
        data = cache[q]
        return data if len(data) <= max_bytes else None

    found = _bisect(fits, lo, hi)
    if found is None:
        return None
    q, data = found
    return EncodedImage(data, codec, q, 8 * len(data) / pixels)
