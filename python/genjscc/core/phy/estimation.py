"""Channel, noise and drift estimation for the burst OFDM receiver (numpy, batched over frames).

Conventions: frequency-domain values come from an orthonormal FFT, so a unit-energy symbol on
a subcarrier has ``E|X|^2 = 1`` and white noise of variance ``s2`` per time sample has variance
``s2`` on every subcarrier. Carrier indices are signed (``-fft_len/2 .. fft_len/2 - 1``).
Every function takes a batch of frames on the leading axes: the receiver estimates all the
frames found in one pass together (a handful of numpy calls per pass, not per frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChannelEstimate", "LmmseSmoother", "anchored_phase_ramp", "track_phase_and_timing"]


@dataclass(frozen=True)
class ChannelEstimate:
    """LMMSE channel estimates of a batch of frames on a set of carriers.

    Attributes:
        gain: complex ``[..., K]`` estimate of the channel on each carrier.
        mse: float ``[..., K]`` posterior error variance of each ``gain`` (model-based).
        power: float ``[...]`` estimated mean channel power ``E|H|^2`` (the prior's scale).
    """

    gain: np.ndarray
    mse: np.ndarray
    power: np.ndarray


class LmmseSmoother:
    """Smooth least-squares channel values across frequency with an LMMSE filter.

    Model: ``H = F g`` with ``F[k, d] = exp(-j 2 pi k d / fft_len)``: an impulse response of
    ``num_delays`` uncorrelated taps at delays ``0 .. num_delays - 1`` samples of the FFT
    window. Two passes: the first assumes a uniform power delay profile over those delays
    (the robust prior); the second uses the power of each tap that the first pass found
    (above its own error) as the prior, which shrinks the taps that hold only noise (the
    DFT-domain denoising step) without cutting real paths.

    Args:
        carriers: signed carrier indices ``[K]``.
        fft_len: FFT size.
        num_delays: taps in the prior (the cyclic prefix length + 1 is a good choice).
    """

    def __init__(self, carriers: np.ndarray, fft_len: int, num_delays: int):
        delays = np.arange(num_delays)
        self.num_delays = num_delays
        self._f = np.exp(-2j * np.pi * np.outer(carriers, delays) / fft_len)  # [K, D]
        self._f_conj = self._f.conj()
        self._gram = self._f_conj.T @ self._f  # F^H F, [D, D]
        self._diag = np.arange(num_delays)

    def __call__(self, ls: np.ndarray, noise_var: np.ndarray | float) -> ChannelEstimate:
        """Estimates from LS values ``ls`` (complex ``[..., K]``: ``Y / X`` averaged over
        training symbols) whose entries have noise variance ``noise_var`` (``[...]``)."""
        ls = np.asarray(ls)
        batch = ls.shape[:-1]
        y = ls.reshape(-1, ls.shape[-1])
        nv = np.maximum(np.broadcast_to(np.asarray(noise_var, float), batch).reshape(-1), 1e-12)
        power = np.maximum(np.maximum(np.mean(np.abs(y) ** 2, axis=1) - nv, 1e-3 * nv), 1e-12)
        proj = y @ self._f_conj  # F^H y per frame, [B, D]
        taps = self.num_delays
        g, cov = self._posterior(proj, nv, np.repeat((power / taps)[:, None], taps, axis=1))
        tap_power = np.maximum(np.abs(g) ** 2 - np.real(cov[:, self._diag, self._diag]), 0.0)
        # Floor: no tap is ruled out entirely (1e-3 of the mean tap power).
        g, cov = self._posterior(proj, nv, tap_power + (1e-3 / taps) * power[:, None])
        gain = g @ self._f.T
        mse = np.real(np.sum((self._f @ cov) * self._f_conj, axis=-1))  # diag(F cov F^H)
        shape = (*batch, -1)
        return ChannelEstimate(gain=gain.reshape(shape), mse=np.maximum(mse, 0.0).reshape(shape),
                               power=power.reshape(batch))

    def _posterior(self, proj: np.ndarray, nv: np.ndarray,
                   prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means ``[B, D]`` and covariances ``[B, D, D]`` of g for ``y = F g + n``,
        ``g ~ CN(0, diag(prior))``, from ``proj = F^H y``."""
        precision = self._gram[None] / nv[:, None, None]
        precision[:, self._diag, self._diag] += 1.0 / prior
        cov = np.linalg.inv(precision)
        return (cov @ proj[:, :, None])[:, :, 0] / nv[:, None], cov


def track_phase_and_timing(
    pilots_rx: np.ndarray,
    pilots_ref: np.ndarray,
    pilot_carriers: np.ndarray,
    offsets: np.ndarray,
    fft_len: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Common phase per OFDM symbol and the sample-clock drift, from the pilots.

    Model: pilot ``k`` of symbol ``n`` is ``H_k X_nk exp(j phi_n - j 2 pi k delta offsets_n /
    fft_len)`` plus noise: ``phi_n`` is the common phase (residual CFO, phase noise),
    ``delta`` the relative sample-rate offset (timing drift per sample) and ``offsets_n`` the
    distance in samples from the training symbols (where the channel was estimated) to
    symbol ``n``.

    ``phi_n`` is a straight line (residual CFO) plus a moving average over ``window``
    symbols of what the line leaves (phase noise); ``delta`` is a least-squares fit over all
    pilots.

    Args:
        pilots_rx: complex ``[..., S, P]`` received pilots (leading axes: frames).
        pilots_ref: complex ``[..., S, P]`` their expected values ``H_k X_nk``.
        pilot_carriers: signed carrier indices ``[P]``.
        offsets: float ``[S]`` samples from the training symbols to each symbol.
        fft_len: FFT size.
        window: moving-average length in symbols (odd, >= 1).

    Returns:
        ``phi`` float ``[..., S]`` (radians) and ``delta`` float ``[...]`` (relative
        sample-rate offset).
    """
    obs = pilots_rx * np.conj(pilots_ref)  # [..., S, P], weighted by |H_k|^2
    phi = _common_phase(obs, window)
    theta = np.angle(obs * np.exp(-1j * phi)[..., None])
    x = -2 * np.pi * pilot_carriers[None, :].astype(float) * offsets[:, None] / fft_len
    w = np.abs(pilots_ref) ** 2
    denom = np.sum(w * x * x, axis=(-2, -1))
    delta = np.sum(w * x * theta, axis=(-2, -1)) / np.where(denom > 0, denom, 1.0)
    delta = np.where(denom > 0, delta, 0.0)
    # Common phase again, now that the timing slope is known.
    obs = obs * np.exp(-1j * x * delta[..., None, None])
    return _common_phase(obs, window), delta


def anchored_phase_ramp(
    pilots_rx: np.ndarray,
    pilots_ref: np.ndarray,
    offsets: np.ndarray,
    max_cfo: float,
) -> np.ndarray:
    """Common phase of a few OFDM symbols: a residual-CFO ramp through 0 at the channel estimate.

    For the first symbols after the training symbols, where a line fitted to the pilots alone
    (offset and slope, :func:`track_phase_and_timing`) is too noisy at low SNR. The channel
    estimate holds the phase at the training symbols, so the common phase of symbol ``n`` is
    ``phi_n = 2 pi eps offsets_n`` with one unknown, the residual CFO ``eps`` (what the CFO
    estimate missed). ``eps`` maximises ``Re sum_n exp(-j phi_n) sum_k rx_nk conj(ref_nk)``
    (the pilots' maximum-likelihood estimate under white noise) on a grid over
    ``[-max_cfo, max_cfo]`` whose phase step at the farthest symbol is at most 1 degree.

    Args:
        pilots_rx: complex ``[..., S, P]`` received pilots (leading axes: frames).
        pilots_ref: complex ``[..., S, P]`` their expected values ``H_k X_nk``.
        offsets: float ``[S]`` samples from the centre of the training symbols (where the
            channel was estimated) to the centre of each symbol's FFT window.
        max_cfo: largest residual CFO searched, cycles per sample (> 0).

    Returns:
        ``phi`` float ``[..., S]`` (radians).
    """
    offsets = np.asarray(offsets, dtype=float)
    reach = float(np.max(np.abs(offsets)))
    if not (max_cfo > 0 and reach > 0):
        raise ValueError("anchored_phase_ramp needs max_cfo > 0 and a nonzero offset")
    per_symbol = np.sum(pilots_rx * np.conj(pilots_ref), axis=-1)  # [..., S]
    steps = int(np.ceil(max_cfo * 360.0 * reach))
    grid = np.linspace(-max_cfo, max_cfo, 2 * steps + 1)  # cycles per sample
    rotate = np.exp(-2j * np.pi * offsets[:, None] * grid[None, :])  # [S, G]
    eps = grid[np.argmax(np.real(per_symbol @ rotate), axis=-1)]
    return 2 * np.pi * eps[..., None] * offsets


def _common_phase(obs: np.ndarray, window: int) -> np.ndarray:
    per_symbol = obs.sum(-1)  # [..., S]
    size = per_symbol.shape[-1]
    n = np.arange(size)
    if size > 1:
        omega = np.angle(np.sum(per_symbol[..., 1:] * np.conj(per_symbol[..., :-1]), axis=-1))
    else:
        omega = np.zeros(per_symbol.shape[:-1])
    line = np.exp(1j * omega[..., None] * n)
    phi0 = np.angle(np.sum(per_symbol * np.conj(line), axis=-1))
    rest = per_symbol * np.conj(line) * np.exp(-1j * phi0)[..., None]
    if window > 1 and size > 1:
        rest = _centered_sum(rest, min(window, size))
    return phi0[..., None] + omega[..., None] * n + np.angle(rest)


def _centered_sum(a: np.ndarray, width: int) -> np.ndarray:
    """``np.convolve(a, ones(width), "same")`` along the last axis of a batch."""
    size = a.shape[-1]
    padded = np.zeros((*a.shape[:-1], size + width - 1), a.dtype)
    padded[..., width // 2 : width // 2 + size] = a
    out = padded[..., :size].copy()
    for j in range(1, width):
        out += padded[..., j : j + size]
    return out
