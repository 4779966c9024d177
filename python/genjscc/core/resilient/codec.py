"""The loss-resilient image codec: image -> fixed-size packets -> (any subset) -> image.

:class:`ResilientCodec` joins the networks of :mod:`genjscc.core.resilient.model` and the
packets of :mod:`genjscc.core.resilient.packets`. Encoding: pad the image to a multiple of the
patch (edge replication), one FSQ token per patch, tokens dealt to packets and range-coded.
Decoding: the tokens of the packets that arrived, the transformer's expected code for every
other token (concealment), the synthesis transform, cropped to the sent size and clamped to
[0, 1]. Any non-empty subset of a packet set decodes to an image; with no usable packet there
is no image (the size is unknown) and :meth:`ResilientCodec.decode` returns ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from genjscc.core.resilient.model import ResilientModel, load_resilient
from genjscc.core.resilient.packets import (
    TokenCoder,
    decode_tokens,
    encode_tokens,
)

MAX_PIXELS = 4096 * 4096
DEFAULT_MODEL = "resilient-p8"
DEFAULT_PACKET_BYTES = 128


def pad_to_patch(image: torch.Tensor, patch: int) -> torch.Tensor:
    """``[3, H, W]`` padded (edge replication) to multiples of ``patch``."""
    h, w = image.shape[-2:]
    return F.pad(image.unsqueeze(0), (0, -w % patch, 0, -h % patch), mode="replicate")[0]


@dataclass
class DecodeReport:
    """What a decode used: packets received (distinct), duplicates ignored, packets rejected
    (corrupt or foreign), the packet count of the image, and the share of tokens concealed."""

    received: int
    duplicates: int
    rejected: int
    count: int
    concealed: float


class ResilientCodec:
    """Encoder and decoder of one model (``model``, integer ``frequencies``)."""

    def __init__(self, model: ResilientModel, frequencies) -> None:
        self.model = model.eval()
        self.coder = TokenCoder(np.asarray(frequencies, dtype=np.int64))
        if self.coder.vocab != model.config.vocab:
            raise ValueError(f"frequency table has {self.coder.vocab} entries, the model "
                             f"{model.config.vocab} tokens")
        self.patch = model.config.patch

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid ``(rows, cols)`` of an image of ``height x width`` pixels."""
        return -(-height // self.patch), -(-width // self.patch)

    def _num_tokens(self, height: int, width: int) -> int:
        """Tokens of a ``height x width`` image; ValueError beyond MAX_PIXELS (a packet that
        claims a huge image is rejected, not allocated)."""
        if height * width > MAX_PIXELS:
            raise ValueError(f"image {height}x{width} is larger than {MAX_PIXELS} pixels")
        rows, cols = self.grid(height, width)
        return rows * cols

    def tokens(self, image: torch.Tensor) -> np.ndarray:
        """Raster-ordered tokens (int64) of a float image ``[3, H, W]`` in [0, 1]."""
        _check_image(image)
        with torch.inference_mode():
            x = pad_to_patch(image.float().cpu(), self.patch).unsqueeze(0)
            return self.model.tokens(x)[0].flatten().numpy().astype(np.int64)

    def encode(self, image: torch.Tensor, packet_bytes: int = DEFAULT_PACKET_BYTES,
               num_packets: int | None = None, image_id: int = 0) -> list[bytes]:
        """Packets of ``packet_bytes`` bytes each; ``num_packets`` fixes their number (a byte
        budget: prefix coding below the natural rate, repetition above it)."""
        h, w = image.shape[-2:]
        return encode_tokens(self.coder, self.tokens(image), h, w, packet_bytes, num_packets,
                             image_id)

    def decode(self, packets) -> tuple[torch.Tensor | None, DecodeReport]:
        """Image ``[3, H, W]`` in [0, 1] from any subset of one image's packets (any order,
        duplicates and corrupt packets tolerated), and a report; ``None`` without a usable
        packet."""
        got = decode_tokens(self.coder, packets, self._num_tokens)
        if got.header is None:
            return None, DecodeReport(0, got.duplicates, got.rejected, 0, 1.0)
        h, w = got.header.height, got.header.width
        rows, cols = self.grid(h, w)
        known = torch.from_numpy(got.tokens >= 0).view(rows, cols)
        tokens = torch.from_numpy(np.maximum(got.tokens, 0)).view(rows, cols)
        with torch.inference_mode():
            codes = self.model.conceal(tokens, known)
            image = self.model.synthesis(codes.unsqueeze(0))[0, :, :h, :w].clamp(0, 1)
        report = DecodeReport(got.received, got.duplicates, got.rejected, got.header.count,
                              float(1.0 - known.float().mean()))
        return image, report


def _check_image(image: torch.Tensor) -> None:
    if not (isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3):
        raise ValueError("image must be a float tensor [3, H, W] in [0, 1]")
    if image.shape[1] * image.shape[2] > MAX_PIXELS or min(image.shape[1:]) < 1:
        raise ValueError(f"image {image.shape[1]}x{image.shape[2]} must have 1 .. "
                         f"{MAX_PIXELS} pixels")


def load_resilient_codec(ref, device: torch.device) -> ResilientCodec:
    """Zoo loader (``genjscc.zoo.load(name, "resilient")``): the codec of a weights file."""
    if torch.device(device).type != "cpu":
        raise ValueError("the resilient codec runs on the CPU (device='cpu')")
    model, freqs, _meta = load_resilient(Path(ref.path), "cpu")
    return ResilientCodec(model, freqs)


def load_codec(name_or_path: str | Path = DEFAULT_MODEL) -> ResilientCodec:
    """The codec of a zoo name or a weights file written by ``genjscc train resilient``."""
    from genjscc import zoo

    return zoo.load(name_or_path, "resilient", "cpu")


def measure(codec: ResilientCodec, images: list[torch.Tensor],
            conceal_shares: tuple[float, ...] = (0.1, 0.3, 0.5), seed: int = 0) -> dict:
    """Mean PSNR / MS-SSIM / bits per token / bpp without loss over ``images``, and the mean
    PSNR with a share of tokens lost at random (concealed)."""
    from genjscc.core.jscc.images import ms_ssim, psnr_db, quantize_image

    gen = torch.Generator().manual_seed(seed)
    psnr, ssim, bits, pixels, tokens = [], [], 0.0, 0, 0
    concealed: dict[str, list[float]] = {f"{int(s * 100)}%": [] for s in conceal_shares}
    with torch.inference_mode():
        for img in images:
            t = codec.tokens(img)
            bits += float(codec.coder.bits[t].sum())
            pixels += img.shape[1] * img.shape[2]
            tokens += t.size
            rows, cols = codec.grid(*img.shape[1:])
            grid = torch.from_numpy(t).view(rows, cols)
            for share in (0.0, *conceal_shares):
                known = torch.rand(rows, cols, generator=gen) >= share
                rec = codec.model.synthesis(codec.model.conceal(grid, known).unsqueeze(0))[0]
                rec = quantize_image(rec[:, :img.shape[1], :img.shape[2]].clamp(0, 1))
                p = float(psnr_db(img, rec))
                if share == 0.0:
                    psnr.append(p)
                    ssim.append(float(ms_ssim(img, rec)))
                else:
                    concealed[f"{int(share * 100)}%"].append(p)
    return {"psnr_db": float(np.mean(psnr)), "ms_ssim": float(np.mean(ssim)),
            "bits_per_token": bits / tokens, "bpp": bits / pixels,
            "concealed_psnr_db": {k: float(np.mean(v)) for k, v in concealed.items()}}
