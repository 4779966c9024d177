"""Channel, noise and drift estimation for the burst OFDM receiver (numpy, one frame).

Conventions: frequency-domain values come from an orthonormal FFT, so a unit-energy symbol on
a subcarrier has ``E|X|^2 = 1`` and white noise of variance ``s2`` per time sample has variance
``s2`` on every subcarrier. Carrier indices are signed (``-fft_len/2 .. fft_len/2 - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChannelEstimate", "lmmse_channel", "track_phase_and_timing"]


@dataclass(frozen=True)
class ChannelEstimate:
    """LMMSE channel estimate on a set of carriers.

    Attributes:
        gain: complex ``[K]`` estimate of the channel on each carrier.
        mse: float ``[K]`` posterior error variance of each ``gain`` (model-based).
        power: estimated mean channel power ``E|H|^2`` used as the prior's scale.
    """

    gain: np.ndarray
    mse: np.ndarray
    power: float


def lmmse_channel(ls: np.ndarray, carriers: np.ndarray, fft_len: int, num_delays: int,
                  noise_var: float) -> ChannelEstimate:
    """Smooth least-squares channel values across frequency with an LMMSE filter.

    Model: ``H = F g`` with ``F[k, d] = exp(-j 2 pi k d / fft_len)``: an impulse response of
    ``num_delays`` uncorrelated taps at delays ``0 .. num_delays - 1`` samples of the FFT
    window. Two passes: the first assumes a uniform power delay profile over those delays
    (the robust prior); the second uses the power of each tap that the first pass found
    (above its own error) as the prior, which shrinks the taps that hold only noise (the
    DFT-domain denoising step) without cutting real paths.

    Args:
        ls: complex ``[K]`` LS estimates ``Y / X`` on ``carriers`` (averaged over training
            symbols), each with noise variance ``noise_var``.
        carriers: signed carrier indices ``[K]``.
        fft_len: FFT size.
        num_delays: taps in the prior (the cyclic prefix length + 1 is a good choice).
        noise_var: variance of the noise on each entry of ``ls``.
    """
    delays = np.arange(num_delays)
    f = np.exp(-2j * np.pi * np.outer(carriers, delays) / fft_len)
    noise_var = max(float(noise_var), 1e-12)
    power = max(float(np.mean(np.abs(ls) ** 2)) - noise_var, 1e-3 * noise_var, 1e-12)
    g, cov = _posterior(f, ls, noise_var, np.full(num_delays, power / num_delays))
    tap_power = np.maximum(np.abs(g) ** 2 - np.real(np.diag(cov)), 0.0)
    # Floor: no tap is ruled out entirely (1e-3 of the mean tap power).
    prior = tap_power + 1e-3 * power / num_delays
    g, cov = _posterior(f, ls, noise_var, prior)
    gain = f @ g
    mse = np.real(np.einsum("kd,de,ke->k", f, cov, f.conj()))
    return ChannelEstimate(gain=gain, mse=np.maximum(mse, 0.0), power=power)


def _posterior(f: np.ndarray, y: np.ndarray, noise_var: float,
               prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance of g for ``y = F g + n``, ``g ~ CN(0, diag(prior))``."""
    precision = f.conj().T @ f / noise_var + np.diag(1.0 / prior)
    cov = np.linalg.inv(precision)
    return cov @ (f.conj().T @ y) / noise_var, cov


def track_phase_and_timing(
    pilots_rx: np.ndarray,
    pilots_ref: np.ndarray,
    pilot_carriers: np.ndarray,
    offsets: np.ndarray,
    fft_len: int,
    window: int,
) -> tuple[np.ndarray, float]:
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
        pilots_rx: complex ``[S, P]`` received pilots.
        pilots_ref: complex ``[S, P]`` their expected values ``H_k X_nk``.
        pilot_carriers: signed carrier indices ``[P]``.
        offsets: float ``[S]`` samples from the training symbols to each symbol.
        fft_len: FFT size.
        window: moving-average length in symbols (odd, >= 1).

    Returns:
        ``phi`` float ``[S]`` (radians) and ``delta`` (relative sample-rate offset).
    """
    obs = pilots_rx * np.conj(pilots_ref)  # [S, P], weighted by |H_k|^2
    phi = _common_phase(obs, window)
    theta = np.angle(obs * np.exp(-1j * phi)[:, None])
    k = pilot_carriers[None, :].astype(float)
    w = np.abs(pilots_ref) ** 2
    x = -2 * np.pi * k * offsets[:, None] / fft_len
    denom = float(np.sum(w * x * x))
    delta = float(np.sum(w * x * theta)) / denom if denom > 0 else 0.0
    # Common phase again, now that the timing slope is known.
    obs = obs * np.exp(-1j * x * delta)
    return _common_phase(obs, window), delta


def _common_phase(obs: np.ndarray, window: int) -> np.ndarray:
    per_symbol = obs.sum(1)
    n = np.arange(per_symbol.size)
    omega = float(np.angle(np.sum(per_symbol[1:] * np.conj(per_symbol[:-1])))) \
        if per_symbol.size > 1 else 0.0
    line = np.exp(1j * omega * n)
    phi0 = float(np.angle(np.sum(per_symbol * np.conj(line))))
    rest = per_symbol * np.conj(line) * np.exp(-1j * phi0)
    if window > 1 and rest.size > 1:
        kernel = np.ones(min(window, rest.size))
        rest = np.convolve(rest, kernel, mode="same")
    return phi0 + omega * n + np.angle(rest)
