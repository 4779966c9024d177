"""Unitary symbol spreading of one image's JSCC symbols, and their cutting into segments.

JSCC latents put most energy on a few symbols (the strong low-frequency coefficients), and an
OFDM receiver's errors are partly *multiplicative* (channel-estimate and common-phase errors
scale each subcarrier): on those strong symbols they cost several dB of PSNR at high SNR.
:func:`spread` maps the symbols through ``fft(signs * x, norm="ortho")`` with fixed
pseudo-random signs, then a fixed pseudo-random permutation: every symbol then carries the
same average energy and those errors reach the decoder as a small additive noise. Over AWGN
spreading changes nothing (a unitary map of white noise is white noise).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FrameCounter", "despread", "segment", "spread", "spreading_code"]


def spreading_code(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed +-1 signs and permutation of :func:`spread` for ``n`` symbols (a pure
    function of ``n``)."""
    rng = np.random.default_rng(0x4A534343)
    return rng.integers(0, 2, n).astype(np.float32) * 2 - 1, rng.permutation(n)


def spread(x: np.ndarray) -> np.ndarray:
    """Unitary spreading of one image's symbols: ``fft(signs * x, norm="ortho")``, permuted.

    The permutation matters: an OFDM receiver's per-carrier errors repeat with the carrier
    pattern, and without it that period would map each strong symbol's error onto its
    neighbours instead of spreading it like white noise."""
    signs, perm = spreading_code(x.size)
    return np.fft.fft(signs * x, norm="ortho")[perm].astype(np.complex64)


def despread(y: np.ndarray) -> np.ndarray:
    """The inverse of :func:`spread`."""
    signs, perm = spreading_code(y.size)
    unpermuted = np.empty_like(y)
    unpermuted[perm] = y
    return (np.fft.ifft(unpermuted, norm="ortho") * signs).astype(np.complex64)


def segment(x: np.ndarray, symbols_per_segment: int) -> np.ndarray:
    """``x`` zero-padded to whole segments and cut: complex64 ``[num_segments, spf]``
    (``symbols_per_segment`` 0: one segment of all symbols)."""
    spf = symbols_per_segment or x.size
    num_segments = -(-x.size // spf)
    padded = np.zeros(num_segments * spf, dtype=np.complex64)
    padded[:x.size] = x
    return padded.reshape(num_segments, spf)


class FrameCounter:
    """Unwraps a wrapping frame counter (the OFDM header's 12 bits) into a frame number.

    A counter value below the previous one means the counter wrapped once. Not thread-safe:
    the caller holds its own lock.
    """

    def __init__(self, bits: int = 12) -> None:
        self.period = 1 << bits
        self._last: int | None = None
        self._base = 0

    def unwrap(self, counter: int) -> int:
        """The frame number of ``counter``, counting every wrap seen so far."""
        if self._last is not None and counter < self._last:
            self._base += self.period
        self._last = counter
        return self._base + counter
