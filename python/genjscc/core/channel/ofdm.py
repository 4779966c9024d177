"""OFDM channel estimation: smoothing the per-carrier channel taps of a preamble estimate.

Used by the OFDM receiver of analog payloads (``ofdm_jscc_rx``): the raw taps of a single
preamble symbol are noisy, and their spread around a moving average is also the receiver's
noise estimate.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["smooth_channel_taps"]


def smooth_channel_taps(taps: np.ndarray, active: np.ndarray, smooth_len: int
                        ) -> tuple[np.ndarray, float]:
    """Smoothed channel taps and the Es/N0 (dB) of symbols equalized with them.

    Args:
        taps: raw per-carrier estimates ``[fft_len]`` (FFT-shifted carrier order).
        active: indices of the active carriers, ascending.
        smooth_len: moving-average length in carriers (odd, >= 1).

    The delay slope is the angle of ``sum(h[k+1] conj(h[k]))`` over adjacent active
    carriers; taps are de-rotated, averaged, and re-rotated. The noise per raw tap is
    ``mean |raw - smoothed|^2`` corrected for the averaging (``L / (L - 1)``); the equalized
    noise is that over ``|h|^2`` plus the smoothed estimate's own error (``1 / L`` of it).
    """
    h = taps[active].astype(np.complex128)
    idx = active.astype(np.float64)
    adjacent = np.diff(active) == 1
    corr = np.sum(h[1:][adjacent] * np.conj(h[:-1][adjacent]))
    slope = np.angle(corr) if abs(corr) > 0 else 0.0
    rot = np.exp(-1j * slope * idx)
    flat = h * rot
    n = flat.size
    half = max(smooth_len, 1) // 2
    csum = np.concatenate([[0], np.cumsum(flat)])
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    smooth = (csum[hi] - csum[lo]) / (hi - lo)
    out = taps.astype(np.complex64).copy()
    out[active] = (smooth / rot).astype(np.complex64)
    length = np.maximum(hi - lo, 1)
    # residual variance of raw - mean over L is N0 (1 - 1/L) per tap
    resid = np.abs(flat - smooth) ** 2 / np.maximum(1.0 - 1.0 / length, 1e-3)
    gain = np.abs(smooth) ** 2
    n0_eq = float(np.mean(resid * (1.0 + 1.0 / length) / np.maximum(gain, 1e-12)))
    snr_db = -10.0 * math.log10(max(n0_eq, 1e-12))
    return out, snr_db
