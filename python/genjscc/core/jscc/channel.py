"""Channels for analog JSCC symbols: AWGN and Rayleigh block fading with equalization.

``JSCCChannel(kind)(x, snr_db, generator=None) -> (y, decoder_snr_db)`` for complex ``x [B, k]``
with unit average energy per row (``Es = 1``, so ``N0 = 1 / SNR``; docs/conventions.md) and a
per-image ``snr_db [B]`` (the average SNR of the link).

* ``"awgn"``: ``y = x + w``, ``w ~ CN(0, N0)``; the decoder is told ``snr_db``.
* ``"rayleigh"``: block fading (:class:`genjscc.core.channel.RayleighBlockFading`) with one
  coefficient ``h ~ CN(0, 1)`` per image (slow fading: an image is shorter than the coherence
  time) and perfect receiver CSI. The receiver equalizes, ``y = (h x + w) / h``, which leaves
  AWGN of variance ``N0 / |h|^2``: the decoder is told the effective SNR
  ``snr_db + 10 log10 |h|^2``, while the encoder only ever knows the average.
"""

from __future__ import annotations

import torch

from genjscc.core.channel import RayleighBlockFading, add_awgn, equalize, noise_var_from_esno_db
from genjscc.core.channel.snr import linear_to_db

__all__ = ["CHANNELS", "JSCCChannel"]

CHANNELS = ("awgn", "rayleigh")


class JSCCChannel:
    """Callable channel for :class:`~genjscc.core.jscc.model.DeepJSCC` symbols (see module)."""

    def __init__(self, kind: str = "awgn"):
        if kind not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {kind!r}")
        self.kind = kind
        self._fading = RayleighBlockFading(block_length=None, csi="perfect")

    def __repr__(self) -> str:
        return f"JSCCChannel({self.kind!r})"

    def __call__(self, x: torch.Tensor, snr_db: float | torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not (isinstance(x, torch.Tensor) and x.is_complex() and x.dim() == 2):
            raise ValueError("x must be complex [B, k]")
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=x.device).reshape(-1)
        snr = snr.expand(x.shape[0]) if snr.numel() == 1 else snr
        noise_var = noise_var_from_esno_db(snr)[:, None]
        if self.kind == "awgn":
            return add_awgn(x, noise_var, generator), snr
        y, h = self._fading(x, noise_var, generator)
        x_hat, noise_eff = equalize(y, h, noise_var)
        return x_hat, linear_to_db(1.0 / noise_eff[:, 0])
