"""Additive white Gaussian noise for real and complex baseband tensors.

Convention (docs/conventions.md): ``noise_var`` is N0. Complex input gets circularly
symmetric noise ``CN(0, N0)`` (N0/2 per real dimension); real input gets ``N(0, N0/2)``,
the noise of one real dimension of the same channel. With unit-energy symbols
``Es/N0 = 1/N0`` per complex channel use.
"""

from __future__ import annotations

import torch

__all__ = ["AWGN", "add_awgn", "as_noise_var"]


def as_noise_var(noise_var: float | torch.Tensor, x: torch.Tensor, name: str = "noise_var"):
    """Return ``noise_var`` as a real tensor on ``x``'s device, broadcastable to ``x``.

    Raises ValueError if it is negative or NaN, or does not broadcast to ``x.shape`` without
    enlarging it (a per-batch N0 has shape ``[B, 1]`` for ``x`` of shape ``[B, n]``).
    """
    real_dtype = x.real.dtype if x.is_complex() else x.dtype
    if isinstance(noise_var, torch.Tensor):
        if noise_var.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        nv = noise_var.to(device=x.device, dtype=real_dtype)
    else:
        nv = torch.as_tensor(float(noise_var), dtype=real_dtype, device=x.device)
    # the broadcast rule by hand: torch.broadcast_shapes costs about 0.1 ms per call
    if nv.dim() > x.dim():
        raise ValueError(
            f"{name} of shape {tuple(nv.shape)} would enlarge x of shape {tuple(x.shape)}"
        )
    for nv_size, x_size in zip(reversed(nv.shape), reversed(x.shape), strict=False):
        if nv_size not in (1, x_size):
            raise ValueError(
                f"{name} of shape {tuple(nv.shape)} does not broadcast to x of shape "
                f"{tuple(x.shape)} without enlarging it; give a scalar, a per-batch [B, 1] "
                "or a per-element tensor")
    if bool((~(nv >= 0)).any()):
        raise ValueError(f"{name} (N0) must be >= 0 and not NaN")
    return nv


def _check_signal(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_complex() or x.is_floating_point()):
        raise TypeError(f"x must be a floating or complex tensor, got dtype {x.dtype}")


def add_awgn(
    x: torch.Tensor,
    noise_var: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return ``x + w`` with ``w ~ CN(0, N0)`` (complex ``x``) or ``N(0, N0/2)`` (real ``x``).

    Args:
        x: real or complex tensor of any shape (CPU or CUDA).
        noise_var: N0, a float or a tensor broadcastable to ``x`` (e.g. per batch ``[B, 1]``).
        generator: optional ``torch.Generator`` on ``x``'s device, for reproducible noise.
    """
    _check_signal(x)
    nv = as_noise_var(noise_var, x)
    # torch.randn with a complex dtype draws CN(0, 1): variance 1/2 per real dimension.
    w = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    std = torch.sqrt(nv) if x.is_complex() else torch.sqrt(nv / 2)
    return x + std * w


class AWGN:
    """Callable AWGN channel: ``awgn(x, noise_var, generator=None) -> y``; see :func:`add_awgn`."""

    def __call__(
        self,
        x: torch.Tensor,
        noise_var: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return add_awgn(x, noise_var, generator)

    def __repr__(self) -> str:
        return "AWGN()"
