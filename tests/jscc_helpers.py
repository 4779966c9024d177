"""Shared parts of the tests that compare a Deep JSCC image link with the model over AWGN."""

from __future__ import annotations

import numpy as np
import torch

from genjscc.core.jscc.images import psnr_db


def as_float(pixels) -> torch.Tensor:
    """``H x W x 3`` uint8 pixels (array-like) -> float ``[3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255.0


def awgn_psnr_db(model, ref: torch.Tensor, snr_db: float = 0.0, draws: int = 4) -> float:
    """PSNR (dB) of ``model`` on ``ref`` ``[3, H, W]`` over plain complex AWGN at ``snr_db``
    (unit-power symbols, noise variance ``10**(-snr_db/10)``), the reconstruction rounded to
    8 bits: the mean over ``draws`` seeded noise draws (one draw varies by +-0.3 dB)."""
    h, w = ref.shape[1:]
    sigma = 10.0 ** (-snr_db / 20.0)
    values = []
    with torch.no_grad():
        x = model.encode(ref[None], snr_db)
        for seed in range(draws):
            gen = torch.Generator().manual_seed(seed)
            noisy = x + sigma * torch.randn(x.shape, dtype=torch.complex64, generator=gen)
            rec = model.decode(noisy, snr_db, h, w)[0]
            values.append(float(psnr_db(ref, (rec * 255).round() / 255)))
    return float(np.mean(values))
