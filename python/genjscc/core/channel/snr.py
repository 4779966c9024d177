"""The one place that converts between SNR measures (see docs/conventions.md).

Definitions (binding for all of gr-genjscc):

* Symbols have average energy ``Es = 1``; complex AWGN has total variance ``N0``
  (``N0/2`` per real dimension), so ``SNR = Es/N0`` per complex channel use.
* ``Eb/N0`` is the energy per *information* bit:
  ``Eb/N0 [dB] = Es/N0 [dB] - 10 log10(bits_per_symbol * code_rate)``.
* Analog schemes carry ``bits_per_dim / channel_uses_per_dim`` information bits per channel use;
  ``Eb/N0 [dB] = SNR [dB] - 10 log10(info_bits_per_channel_use)``.

Every function accepts Python floats, numpy arrays (or sequences) and torch tensors for the
SNR-valued arguments and returns the same kind (float, ``numpy.ndarray`` or ``torch.Tensor``).
Rate-like arguments (``bits_per_symbol``, ``code_rate``, ...) may be scalars or arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "analog_info_bits_per_channel_use",
    "db_to_linear",
    "ebno_to_esno_db",
    "ebno_to_snr_db",
    "esno_to_ebno_db",
    "linear_to_db",
    "noise_var_from_ebno_db",
    "noise_var_from_esno_db",
    "snr_to_ebno_db",
]


def _as_numeric(x: Any, name: str) -> float | np.ndarray | torch.Tensor:
    """Return ``x`` as a float, a float numpy array or a floating torch tensor."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())
    if isinstance(x, bool):
        raise TypeError(f"{name} must be a number, got bool")
    if isinstance(x, int | float | np.floating | np.integer):
        return float(x)
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number, array or tensor, got {type(x).__name__}")
    return arr.astype(np.float64) if arr.dtype.kind != "f" else arr


def _log10(x: float | np.ndarray | torch.Tensor) -> float | np.ndarray | torch.Tensor:
    if isinstance(x, torch.Tensor):
        return torch.log10(x)
    if isinstance(x, np.ndarray):
        with np.errstate(divide="ignore"):  # log10(0) = -inf is the intended answer
            return np.log10(x)
    return math.log10(x) if x > 0 else -math.inf


def _check_positive(x: Any, name: str, upper: float | None = None) -> Any:
    """Validate ``0 < x`` (and ``x <= upper``) elementwise; return x as numeric."""
    v = _as_numeric(x, name)
    if isinstance(v, torch.Tensor):
        bad = bool(((v <= 0) | v.isnan()).any()) or (upper is not None and bool((v > upper).any()))
    else:
        a = np.asarray(v)
        bad = bool(np.any(~(a > 0))) or (upper is not None and bool(np.any(a > upper)))
    if bad:
        rng = f"in (0, {upper:g}]" if upper is not None else "> 0"
        raise ValueError(f"{name} must be {rng}, got {x!r}")
    return v


def _rate_db(x: Any, name: str, upper: float | None = None) -> Any:
    """``10 log10(x)`` of a validated positive rate-like quantity."""
    return 10.0 * _log10(_check_positive(x, name, upper))


def db_to_linear(x_db: Any) -> float | np.ndarray | torch.Tensor:
    """Convert decibels to a linear power ratio: ``10 ** (x_db / 10)``."""
    x = _as_numeric(x_db, "x_db")
    if isinstance(x, torch.Tensor):
        return torch.pow(10.0, x / 10.0)
    if isinstance(x, np.ndarray):
        return np.power(10.0, x / 10.0)
    return 10.0 ** (x / 10.0)


def linear_to_db(x: Any) -> float | np.ndarray | torch.Tensor:
    """Convert a linear power ratio (>= 0) to decibels: ``10 log10(x)``; 0 gives -inf."""
    v = _as_numeric(x, "x")
    neg = (
        bool((v < 0).any() | v.isnan().any())
        if isinstance(v, torch.Tensor)
        else bool(np.any(~(np.asarray(v) >= 0)))
    )
    if neg:
        raise ValueError(f"a linear power ratio must be >= 0, got {x!r}")
    return 10.0 * _log10(v)


def ebno_to_esno_db(ebno_db: Any, bits_per_symbol: Any, code_rate: Any = 1.0) -> Any:
    """Es/N0 in dB from Eb/N0 in dB: ``ebno_db + 10 log10(bits_per_symbol * code_rate)``.

    ``bits_per_symbol`` > 0 (e.g. 2 for QPSK), ``0 < code_rate <= 1``.
    """
    bps_db = _rate_db(bits_per_symbol, "bits_per_symbol")
    rate_db = _rate_db(code_rate, "code_rate", upper=1.0)
    return _as_numeric(ebno_db, "ebno_db") + bps_db + rate_db


def esno_to_ebno_db(esno_db: Any, bits_per_symbol: Any, code_rate: Any = 1.0) -> Any:
    """Eb/N0 in dB from Es/N0 in dB: ``esno_db - 10 log10(bits_per_symbol * code_rate)``."""
    bps_db = _rate_db(bits_per_symbol, "bits_per_symbol")
    rate_db = _rate_db(code_rate, "code_rate", upper=1.0)
    return _as_numeric(esno_db, "esno_db") - bps_db - rate_db


def analog_info_bits_per_channel_use(
    bits_per_dim: Any = 8.0, channel_uses_per_dim: Any = 1.0 / 6.0
) -> Any:
    """Information bits per complex channel use of an analog (Deep JSCC) scheme.

    A source dimension worth ``bits_per_dim`` bits (8 for an 8-bit pixel value, 32 for a
    float32) sent with ``channel_uses_per_dim`` complex channel uses (the bandwidth ratio,
    e.g. 1/6) carries ``bits_per_dim / channel_uses_per_dim`` information bits per use.
    """
    bits = _check_positive(bits_per_dim, "bits_per_dim")
    uses = _check_positive(channel_uses_per_dim, "channel_uses_per_dim")
    return bits / uses


def snr_to_ebno_db(snr_db: Any, info_bits_per_channel_use: Any) -> Any:
    """Eb/N0 in dB from SNR (= Es/N0 per complex channel use) in dB.

    ``ebno_db = snr_db - 10 log10(info_bits_per_channel_use)``; see
    :func:`analog_info_bits_per_channel_use`. Example: a float32 analog value per channel use
    (32 bits per use) has ``Eb/N0 = SNR - 15.05 dB``.
    """
    return _as_numeric(snr_db, "snr_db") - _rate_db(
        info_bits_per_channel_use, "info_bits_per_channel_use"
    )


def ebno_to_snr_db(ebno_db: Any, info_bits_per_channel_use: Any) -> Any:
    """SNR (= Es/N0 per complex channel use) in dB from Eb/N0 in dB; inverse of
    :func:`snr_to_ebno_db`."""
    return _as_numeric(ebno_db, "ebno_db") + _rate_db(
        info_bits_per_channel_use, "info_bits_per_channel_use"
    )


def noise_var_from_esno_db(esno_db: Any, es: float = 1.0) -> Any:
    """Complex noise variance ``N0 = es / 10**(esno_db/10)`` (N0/2 per real dimension)."""
    es_v = _check_positive(es, "es")
    return es_v / db_to_linear(esno_db)


def noise_var_from_ebno_db(
    ebno_db: Any, bits_per_symbol: Any, code_rate: Any = 1.0, es: float = 1.0
) -> Any:
    """N0 for a given Eb/N0 in dB of a digital scheme (``bits_per_symbol``, ``code_rate``)."""
    return noise_var_from_esno_db(ebno_to_esno_db(ebno_db, bits_per_symbol, code_rate), es)
