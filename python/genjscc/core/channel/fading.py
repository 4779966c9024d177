"""Rayleigh block fading, pilot-based channel estimation and zero-forcing equalization.

Model: ``y = h * x + w`` along the last axis of a complex ``x [..., n]``, with one coefficient
``h ~ CN(0, 1)`` (so ``E|h|^2 = 1`` and the average received Es/N0 equals the transmitted one)
held for each block of ``block_length`` consecutive symbols and independent across blocks
and rows, and ``w ~ CN(0, N0)``.

Receiver CSI (``csi``):

* ``"perfect"``: the receiver knows ``h``.
* ``"pilot"``: each block is preceded by ``num_pilots`` known unit-energy pilots (value 1)
  sent through the same ``h``; the least-squares estimate is
  ``h_hat = h + e`` with ``e ~ CN(0, N0 / num_pilots)``. The pilots' channel uses are *not*
  part of ``x``: a scheme that uses pilot CSI must charge the overhead
  ``num_pilots / block_length`` in its rate when it computes Eb/N0.
"""

from __future__ import annotations

import math

import torch

from genjscc.core.channel.awgn import add_awgn, as_noise_var

__all__ = ["RayleighBlockFading", "equalize", "estimate_channel_ls"]

_CSI_MODES = ("perfect", "pilot")


def estimate_channel_ls(
    y_pilots: torch.Tensor,
    pilots: torch.Tensor,
    noise_var: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares estimate of a flat coefficient from pilots sent through it.

    Args:
        y_pilots: received pilots ``h * p + w``, complex ``[..., P]``.
        pilots: the known transmitted pilots, complex, broadcastable to ``y_pilots``.
        noise_var: N0 of ``w``, a float or a tensor broadcastable to ``[..., 1]``.

    Returns:
        ``(h_hat [..., 1], error_var [..., 1])``: ``h_hat = sum(conj(p) y) / sum(|p|^2)`` and
        the variance of its error ``N0 / sum(|p|^2)`` (``N0 / P`` for unit pilots).
    """
    if not (isinstance(y_pilots, torch.Tensor) and y_pilots.is_complex()):
        raise TypeError("y_pilots must be a complex torch.Tensor [..., P]")
    pilots = torch.as_tensor(pilots, device=y_pilots.device).to(y_pilots.dtype)
    if y_pilots.shape[-1] < 1:
        raise ValueError("need at least one pilot along the last axis")
    try:
        torch.broadcast_shapes(pilots.shape, y_pilots.shape)
    except RuntimeError as err:
        raise ValueError(
            f"pilots {tuple(pilots.shape)} do not broadcast to y_pilots {tuple(y_pilots.shape)}"
        ) from err
    energy = (pilots.abs() ** 2).expand(y_pilots.shape).sum(-1, keepdim=True)
    if bool((energy <= 0).any()):
        raise ValueError("pilots must have non-zero energy")
    h_hat = (pilots.conj() * y_pilots).sum(-1, keepdim=True) / energy
    nv = as_noise_var(noise_var, h_hat)
    return h_hat, nv / energy


def equalize(
    y: torch.Tensor,
    h: torch.Tensor,
    noise_var: float | torch.Tensor,
    h_error_var: float | torch.Tensor = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-forcing equalization ``x_hat = y / h`` with its per-symbol effective noise variance.

    Args:
        y: received complex symbols ``[..., n]``.
        h: channel coefficients (true or estimated) broadcastable to ``y``.
        noise_var: N0 of the channel, float or tensor broadcastable to ``y``.
        h_error_var: variance of the CSI error (``N0 / P`` for LS pilots, 0 for perfect CSI);
            it adds ``h_error_var * Es`` (``Es = 1``) to the noise, treating the error as
            Gaussian noise.

    Returns:
        ``(x_hat, noise_var_eff)`` both of ``y``'s shape; ``noise_var_eff = (N0 + h_error_var)
        / |h|^2`` is real and is what :meth:`Constellation.demap` takes as ``noise_var``.
    """
    if not (isinstance(y, torch.Tensor) and y.is_complex()):
        raise TypeError("y must be a complex torch.Tensor")
    h = torch.as_tensor(h, device=y.device).to(y.dtype)
    nv = as_noise_var(noise_var, y) + as_noise_var(h_error_var, y, "h_error_var")
    x_hat = y / h
    noise_var_eff = (nv / (h.abs() ** 2)).expand(y.shape)
    return x_hat, noise_var_eff


class RayleighBlockFading:
    """Rayleigh block fading channel ``(x, noise_var, generator=None) -> (y, h)``.

    Args:
        block_length: symbols per coefficient along the last axis; ``None`` means one
            coefficient per row. A last, shorter block is allowed when ``n`` is not a multiple.
        csi: ``"perfect"`` returns the true ``h``; ``"pilot"`` returns the LS estimate from
            ``num_pilots`` unit pilots per block (error variance ``N0 / num_pilots``, see
            :meth:`csi_error_var`).
        num_pilots: pilots per block for ``csi="pilot"``.

    Call:
        ``x``: complex ``[..., n]`` with ``Es = 1``; ``noise_var``: N0, float or tensor
        broadcastable to ``x``; ``generator``: optional, on ``x``'s device. Returns ``y`` and
        the receiver's CSI ``h``, both ``[..., n]`` (``h`` repeated within each block).
    """

    def __init__(self, block_length: int | None = None, csi: str = "perfect", num_pilots: int = 1):
        if block_length is not None and (
            isinstance(block_length, bool) or not isinstance(block_length, int) or block_length < 1
        ):
            raise ValueError(f"block_length must be a positive int or None, got {block_length!r}")
        if csi not in _CSI_MODES:
            raise ValueError(f"csi must be one of {_CSI_MODES}, got {csi!r}")
        if isinstance(num_pilots, bool) or not isinstance(num_pilots, int) or num_pilots < 1:
            raise ValueError(f"num_pilots must be a positive int, got {num_pilots!r}")
        self.block_length = block_length
        self.csi = csi
        self.num_pilots = num_pilots

    def __repr__(self) -> str:
        return (
            f"RayleighBlockFading(block_length={self.block_length}, csi={self.csi!r}, "
            f"num_pilots={self.num_pilots})"
        )

    def _block_len(self, n: int) -> int:
        return n if self.block_length is None else min(self.block_length, max(n, 1))

    def num_blocks(self, n: int) -> int:
        """Number of coefficients drawn per row of ``n`` symbols."""
        return math.ceil(n / self._block_len(n)) if n > 0 else 0

    def csi_error_var(self, noise_var: float | torch.Tensor) -> float | torch.Tensor:
        """Variance of the CSI error: 0 for perfect CSI, ``N0 / num_pilots`` for pilots."""
        return noise_var * 0.0 if self.csi == "perfect" else noise_var / self.num_pilots

    def sample_coefficients(
        self,
        shape: torch.Size | tuple[int, ...],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.complex64,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw the per-block coefficients ``h ~ CN(0, 1)`` for ``x`` of ``shape`` ``[..., n]``;
        returns ``[..., num_blocks]``."""
        *batch, n = shape
        return torch.randn(
            (*batch, self.num_blocks(n)), dtype=dtype, device=device, generator=generator
        )

    def expand_coefficients(self, h_blocks: torch.Tensor, n: int) -> torch.Tensor:
        """Repeat per-block coefficients ``[..., num_blocks]`` to per-symbol ``[..., n]``."""
        return h_blocks.repeat_interleave(self._block_len(n), dim=-1)[..., :n]

    def __call__(
        self,
        x: torch.Tensor,
        noise_var: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not (isinstance(x, torch.Tensor) and x.is_complex()):
            raise TypeError("x must be a complex torch.Tensor [..., n]")
        if x.dim() < 1:
            raise ValueError("x needs a last (time) axis")
        n = x.shape[-1]
        nv = as_noise_var(noise_var, x)
        h_blocks = self.sample_coefficients(x.shape, x.device, x.dtype, generator)
        h = self.expand_coefficients(h_blocks, n)
        y = add_awgn(h * x, nv, generator)
        if self.csi == "pilot":
            h = self.expand_coefficients(self._estimate_from_pilots(h_blocks, nv, n, generator), n)
        return y, h

    def _estimate_from_pilots(
        self,
        h_blocks: torch.Tensor,
        nv: torch.Tensor,
        n: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Send unit pilots through each block's coefficient and LS-estimate it."""
        # The pilots see the noise variance of their block's first data symbol.
        nv_blocks = nv.expand(*h_blocks.shape[:-1], n)[..., :: self._block_len(n)]
        nv_blocks = nv_blocks.unsqueeze(-1)  # [..., num_blocks, 1]
        pilots = torch.ones(self.num_pilots, dtype=h_blocks.dtype, device=h_blocks.device)
        y_pilots = add_awgn(h_blocks.unsqueeze(-1) * pilots, nv_blocks, generator)
        h_hat, _ = estimate_channel_ls(y_pilots, pilots, nv_blocks)
        return h_hat.squeeze(-1)
