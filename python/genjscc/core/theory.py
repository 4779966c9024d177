"""Closed-form error rates used as references beside simulated curves.

All functions take Eb/N0 in dB (energy per *information* bit, docs/conventions.md) and return
numpy float64 arrays of the same shape.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erfc


def _ebno_linear(ebno_db: ArrayLike) -> np.ndarray:
    return 10.0 ** (np.asarray(ebno_db, dtype=np.float64) / 10.0)


def q_function(x: ArrayLike) -> np.ndarray:
    """Gaussian tail Q(x) = P(N(0,1) > x)."""
    return 0.5 * erfc(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def ber_awgn(bits_per_symbol: int, ebno_db: ArrayLike) -> np.ndarray:
    """Exact uncoded bit error rate of Gray-mapped BPSK or square M-QAM over complex AWGN.

    Square QAM uses the exact expression of Cho and Yoon (IEEE Trans. Commun., 2002) for
    Gray-coded square M-QAM; BPSK and QPSK reduce to Q(sqrt(2 Eb/N0)).
    """
    if bits_per_symbol == 1:
        return q_function(np.sqrt(2.0 * _ebno_linear(ebno_db)))
    if bits_per_symbol % 2 or bits_per_symbol < 2:
        raise ValueError(f"closed form only for BPSK and square QAM, got {bits_per_symbol} bits")
    gamma_b = _ebno_linear(ebno_db)
    m = 2**bits_per_symbol
    sqrt_m = round(math.sqrt(m))
    levels_bits = bits_per_symbol // 2
    total = np.zeros_like(gamma_b)
    for k in range(1, levels_bits + 1):
        p_k = np.zeros_like(gamma_b)
        for i in range(int((1 - 2.0**-k) * sqrt_m)):
            weight = (-1) ** math.floor(i * 2 ** (k - 1) / sqrt_m) * (
                2 ** (k - 1) - math.floor(i * 2 ** (k - 1) / sqrt_m + 0.5))
            p_k += weight * erfc((2 * i + 1) * np.sqrt(
                3 * bits_per_symbol * gamma_b / (2 * (m - 1))))
        total += p_k / sqrt_m
    return total / levels_bits


def ber_bpsk_rayleigh(ebno_db: ArrayLike) -> np.ndarray:
    """BPSK over flat Rayleigh fading with perfect CSI: 0.5 (1 - sqrt(g / (1 + g)))."""
    gamma_b = _ebno_linear(ebno_db)
    return 0.5 * (1.0 - np.sqrt(gamma_b / (1.0 + gamma_b)))


def packet_success_rate(ber: ArrayLike, packet_bits: int) -> np.ndarray:
    """Probability that ``packet_bits`` independent bits all arrive right."""
    return (1.0 - np.asarray(ber, dtype=np.float64)) ** packet_bits


def biawgn_capacity_dispersion(snr: ArrayLike, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Capacity C (bit per use) and dispersion V (bit^2) of the binary-input AWGN channel.

    ``snr`` is linear, amplitude^2 / noise variance of y = x + z, x in {+1, -1}. Computed
    from the information density i = 1 - log2(1 + exp(-2 y x / sigma^2)) by Gauss-Hermite
    quadrature.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)  # weight exp(-t^2/2)
    weights = weights / weights.sum()
    snr_arr = np.atleast_1d(np.asarray(snr, dtype=np.float64))
    sigma = 1.0 / np.sqrt(snr_arr)[:, None]
    y = 1.0 + sigma * nodes[None, :]
    density = 1.0 - np.logaddexp(0.0, -2.0 * y / sigma**2) / math.log(2.0)
    capacity = density @ weights
    dispersion = (density**2) @ weights - capacity**2
    shape = np.shape(snr)
    return capacity.reshape(shape), dispersion.reshape(shape)


def normal_approximation_bler(n: int, k: int, ebno_db: ArrayLike) -> np.ndarray:
    """Block error rate of the best (n, k) binary code on BI-AWGN, normal approximation.

    Polyanskiy, Poor and Verdu (2010): eps = Q((n C - k + 0.5 log2 n) / sqrt(n V)), with the
    BI-AWGN SNR 2 R Eb/N0 (R = k/n). Holds for BPSK, and for Gray QPSK, whose two axes are
    independent binary-input channels at the same Eb/N0.
    """
    if not 0 < k < n:
        raise ValueError(f"need 0 < k < n, got n={n}, k={k}")
    rate = k / n
    capacity, dispersion = biawgn_capacity_dispersion(2.0 * rate * _ebno_linear(ebno_db))
    return q_function((n * capacity - k + 0.5 * math.log2(n)) / np.sqrt(n * dispersion))
