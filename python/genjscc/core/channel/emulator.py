"""Streaming baseband channel emulator in numpy: SRO, multipath, CFO, phase noise, AWGN.

Order of the impairments (the order of gr-channels' ``channel_model``): sample-rate offset
(resampling), multipath (static taps or fading TDL paths), carrier frequency offset, phase
noise, additive white Gaussian noise. The emulator keeps its state between calls, so a stream
cut into any chunks gives the same output as in one piece (for a given seed).

Units and conventions:

* ``es_n0_db``: Es/N0 per data subcarrier symbol of a PHY whose symbols have unit energy on
  an orthonormal transform (the burst OFDM PHY of :mod:`genjscc.core.phy`): the complex noise
  variance per sample is ``N0 = 10^(-es_n0_db / 10)``. ``None``: no noise.
* ``cfo``: carrier offset in subcarriers of ``fft_len`` (cycles per sample = cfo / fft_len);
  the signal is multiplied by ``exp(j 2 pi cfo / fft_len * n)``.
* ``sro_ppm``: output sample ``m`` is the input signal at time ``m (1 + sro_ppm 1e-6)`` input
  samples (a positive value: the receiver's clock runs slow, fewer output samples).
* ``multipath``: ``"none"``; ``"3tap"`` (static taps ``1, 0.5j, -0.3 + 0.2j`` at delays
  0, 2, 5 samples, normalized to unit energy); ``"tdl-a"``, ``"tdl-b"``, ``"tdl-c"`` (3GPP
  TR 38.901 §7.7.2 tapped delay lines, delays scaled by ``delay_spread`` samples, Rayleigh
  paths, normalized to unit mean energy); or a sequence of complex taps (one per sample).
* ``doppler``: maximum Doppler frequency of the TDL paths in cycles per sample; 0 makes each
  path a static random complex gain drawn from the seed.
* ``phase_noise``: standard deviation (radians) of the per-sample step of a Wiener phase
  (``2 pi linewidth / sample_rate`` is the variance of the step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TDL_PROFILES", "THREE_TAP", "ChannelEmulator", "ChannelSpec", "parse_multipath",
           "static_fir"]

# (normalized delay, power dB): 3GPP TR 38.901 V16.1.0 Tables 7.7.2-1 (TDL-A), -2 (TDL-B),
# -3 (TDL-C), all NLOS.
TDL_PROFILES: dict[str, tuple[tuple[float, float], ...]] = {
    "tdl-a": (
        (0.0000, -13.4), (0.3819, 0.0), (0.4025, -2.2), (0.5868, -4.0), (0.4610, -6.0),
        (0.5375, -8.2), (0.6708, -9.9), (0.5750, -10.5), (0.7618, -7.5), (1.5375, -15.9),
        (1.8978, -6.6), (2.2242, -16.7), (2.1718, -12.4), (2.4942, -15.2), (2.5119, -10.8),
        (3.0582, -11.3), (4.0810, -12.7), (4.4579, -16.2), (4.5695, -18.3), (4.7966, -18.9),
        (5.0066, -16.6), (5.3043, -19.9), (9.6586, -29.7),
    ),
    "tdl-b": (
        (0.0000, 0.0), (0.1072, -2.2), (0.2155, -4.0), (0.2095, -3.2), (0.2870, -9.8),
        (0.2986, -1.2), (0.3752, -3.4), (0.5055, -5.2), (0.3681, -7.6), (0.3697, -3.0),
        (0.5700, -8.9), (0.5283, -9.0), (1.1021, -4.8), (1.2756, -5.7), (1.5474, -7.5),
        (1.7842, -1.9), (2.0169, -7.6), (2.8294, -12.2), (3.0219, -9.8), (3.6187, -11.4),
        (4.1067, -14.9), (4.2790, -9.2), (4.7834, -11.3),
    ),
    "tdl-c": (
        (0.0000, -4.4), (0.2099, -1.2), (0.2219, -3.5), (0.2329, -5.2), (0.2176, -2.5),
        (0.6366, 0.0), (0.6448, -2.2), (0.6560, -3.9), (0.6584, -7.4), (0.7935, -7.1),
        (0.8213, -10.7), (0.9336, -11.1), (1.2285, -5.1), (1.3083, -6.8), (2.1704, -8.7),
        (2.7105, -13.2), (4.2589, -13.9), (4.6003, -13.9), (5.4902, -15.8), (5.6077, -17.1),
        (6.3065, -16.0), (6.6374, -15.7), (7.0427, -21.6), (8.6523, -22.8),
    ),
}
THREE_TAP = (1.0, 0.0, 0.5j, 0.0, 0.0, -0.3 + 0.2j)
_INTERP_HALF = 8  # windowed-sinc half length (taps each side) for fractional delays and SRO
_SINUSOIDS = 16  # sum-of-sinusoids terms per fading path


def parse_multipath(spec: str | Sequence[complex] | None) -> str | tuple[complex, ...]:
    """``"none"``, ``"3tap"``, ``"tdl-a|b|c"``, or comma-separated complex taps -> canonical."""
    if spec is None:
        return "none"
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in ("none", "3tap", *TDL_PROFILES):
            return key
        try:
            taps = tuple(complex(t.strip().replace(" ", "")) for t in key.split(","))
        except ValueError as error:
            raise ValueError(
                f"multipath {spec!r}: use none, 3tap, tdl-a, tdl-b, tdl-c or complex taps "
                "like '1,0.5j,-0.2+0.1j'"
            ) from error
        return _check_taps(taps)
    return _check_taps(tuple(complex(t) for t in spec))


def _check_taps(taps: tuple[complex, ...]) -> tuple[complex, ...]:
    if not taps or not all(math.isfinite(abs(t)) for t in taps):
        raise ValueError("multipath taps must be a non-empty list of finite complex numbers")
    if sum(abs(t) ** 2 for t in taps) == 0:
        raise ValueError("multipath taps must not all be zero")
    return taps


@dataclass(frozen=True)
class ChannelSpec:
    """What the emulator does (see the module docstring for units)."""

    es_n0_db: float | None = None
    cfo: float = 0.0
    fft_len: int = 64
    sro_ppm: float = 0.0
    multipath: str | tuple[complex, ...] = "none"
    delay_spread: float = 4.0
    doppler: float = 0.0
    phase_noise: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "multipath", parse_multipath(self.multipath))
        if self.es_n0_db is not None and not math.isfinite(self.es_n0_db):
            raise ValueError("es_n0_db must be finite (or None for no noise)")
        if not math.isfinite(self.cfo) or self.fft_len < 1:
            raise ValueError("cfo must be finite and fft_len >= 1")
        if not -1e4 < self.sro_ppm < 1e4:
            raise ValueError(f"sro_ppm must be within +-10000, got {self.sro_ppm}")
        if not self.delay_spread > 0 or not 0 <= self.doppler < 0.5:
            raise ValueError("need delay_spread > 0 and 0 <= doppler < 0.5 cycles per sample")
        if not self.phase_noise >= 0:
            raise ValueError("phase_noise must be >= 0")

    @property
    def noise_var(self) -> float:
        """Complex noise variance per sample (N0); 0 without noise."""
        return 0.0 if self.es_n0_db is None else 10.0 ** (-self.es_n0_db / 10.0)


class ChannelEmulator:
    """Stateful channel: ``emulator(samples) -> samples`` for consecutive chunks of a stream.

    Args:
        spec: the impairments (:class:`ChannelSpec`), or keyword arguments to build one.
    """

    def __init__(self, spec: ChannelSpec | None = None, **kwargs):
        if spec is not None and kwargs:
            raise ValueError("give a ChannelSpec or keyword arguments, not both")
        self.spec = spec or ChannelSpec(**kwargs)
        # Separate streams per random process, drawn in sample order: any chunking of the
        # input gives the same output.
        paths_seq, phase_seq, noise_seq = np.random.SeedSequence(self.spec.seed).spawn(3)
        self._phase_rng = np.random.default_rng(phase_seq)
        self._noise_rng = np.random.default_rng(noise_seq)
        self._paths = _make_paths(self.spec, np.random.default_rng(paths_seq))
        self._history = np.zeros(0, complex)  # input samples kept for SRO and delays
        self._in_pos = 0.0  # input-time position of the next output sample (SRO)
        self._consumed = 0  # input samples dropped from the front of _history
        self._out_count = 0  # output samples produced (CFO phase, fading time)
        self._phase = 0.0  # Wiener phase-noise state
        self._mp_history = np.zeros(0, complex)  # resampled samples kept for the paths

    @property
    def samples_out(self) -> int:
        return self._out_count

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples)
        if x.ndim != 1 or not np.iscomplexobj(x):
            raise ValueError("samples must be a 1-D complex array")
        y = self._resample(x.astype(np.complex128))
        y = self._multipath(y)
        n = self._out_count + np.arange(y.size)
        s = self.spec
        if s.cfo:
            y = y * np.exp(2j * np.pi * (s.cfo / s.fft_len) * n)
        if s.phase_noise:
            steps = self._phase_rng.normal(0.0, s.phase_noise, y.size)
            phase = self._phase + np.cumsum(steps)
            if phase.size:
                self._phase = float(phase[-1]) % (2 * np.pi)
            y = y * np.exp(1j * phase)
        if s.es_n0_db is not None:
            std = math.sqrt(s.noise_var / 2)
            w = self._noise_rng.standard_normal((y.size, 2))
            y = y + std * (w[:, 0] + 1j * w[:, 1])
        self._out_count += y.size
        return y.astype(np.complex64)

    # -- stages -------------------------------------------------------------------------------

    def _resample(self, x: np.ndarray) -> np.ndarray:
        ratio = 1.0 + self.spec.sro_ppm * 1e-6
        if ratio == 1.0:
            return x
        if self._history.size == 0:
            self._history = np.zeros(_INTERP_HALF, complex)  # zeros before the stream starts
            self._consumed = -_INTERP_HALF
        self._history = np.concatenate([self._history, x])
        last = self._consumed + self._history.size - 1 - _INTERP_HALF  # newest usable centre
        count = max(0, math.floor((last - self._in_pos) / ratio) + 1)
        pos = self._in_pos + ratio * np.arange(count)
        base = np.floor(pos).astype(np.int64)
        frac = pos - base
        taps = np.arange(-_INTERP_HALF + 1, _INTERP_HALF + 1)
        idx = base[:, None] + taps[None, :] - self._consumed
        arg = taps[None, :] - frac[:, None]
        w = np.sinc(arg) * (0.5 + 0.5 * np.cos(np.pi * arg / _INTERP_HALF))
        out = np.sum(self._history[idx] * w, axis=1)
        self._in_pos += ratio * count
        keep_from = math.floor(self._in_pos) - _INTERP_HALF - self._consumed
        if keep_from > 0:
            self._history = self._history[keep_from:]
            self._consumed += keep_from
        return out

    def _multipath(self, x: np.ndarray) -> np.ndarray:
        if self._paths is None or x.size == 0:
            return x
        fir, delays, gains, freqs, phases = self._paths
        span = fir.shape[1] if fir is not None else 0
        hist = self._mp_history
        ext = np.concatenate([hist, x])
        if fir is not None and delays is None:  # static taps: one FIR
            y = np.convolve(ext, fir[0])[hist.size : hist.size + x.size]
        else:
            t = self._out_count + np.arange(x.size)
            y = np.zeros(x.size, complex)
            for p in range(fir.shape[0]):
                delayed = np.convolve(ext, fir[p])[hist.size : hist.size + x.size]
                y += delayed * _path_gain(gains[p], freqs[p], phases[p], t)
        self._mp_history = ext[-(span - 1):] if span > 1 else np.zeros(0, complex)
        if self._mp_history.size < span - 1:
            self._mp_history = np.concatenate(
                [np.zeros(span - 1 - self._mp_history.size, complex), self._mp_history])
        return y


def static_fir(spec: ChannelSpec) -> np.ndarray | None:
    """The FIR (one complex tap per sample) of a static multipath channel exactly as
    :class:`ChannelEmulator` applies it for ``spec.seed``: the normalized taps of ``3tap`` or a
    tap list, or a TDL profile with ``doppler = 0`` (its random path gains, each path's
    fractional delay by windowed sinc after a bulk delay of 8 samples). ``None`` for no
    multipath or fading paths."""
    paths_seq = np.random.SeedSequence(spec.seed).spawn(3)[0]
    paths = _make_paths(spec, np.random.default_rng(paths_seq))
    if paths is None or paths[1] is not None:
        return None
    return paths[0][0]


def _path_gain(amp: float, freqs: np.ndarray, phases: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rayleigh path gain (sum of sinusoids) at sample times ``t``; static if freqs are 0."""
    arg = 2 * np.pi * np.outer(t, freqs) + phases[None, :]
    return amp * np.exp(1j * arg).sum(1) / math.sqrt(freqs.size)


def _make_paths(spec: ChannelSpec, rng: np.random.Generator):
    mp = spec.multipath
    if mp == "none":
        return None
    if mp == "3tap" or isinstance(mp, tuple):
        taps = np.array(THREE_TAP if mp == "3tap" else mp, complex)
        taps /= math.sqrt(np.sum(np.abs(taps) ** 2))
        return taps[None, :], None, None, None, None
    profile = TDL_PROFILES[mp]
    delays = np.array([d for d, _ in profile]) * spec.delay_spread
    powers = 10 ** (np.array([p for _, p in profile]) / 10)
    powers /= powers.sum()
    length = math.ceil(delays.max()) + 2 * _INTERP_HALF
    # FIR index i holds delay i - _INTERP_HALF: a bulk delay of _INTERP_HALF samples keeps
    # the windowed-sinc interpolation causal.
    n = np.arange(length) - _INTERP_HALF
    fir = np.zeros((delays.size, length))
    for p, d in enumerate(delays):
        arg = n - d
        fir[p] = np.sinc(arg) * np.where(np.abs(arg) < _INTERP_HALF,
                                          0.5 + 0.5 * np.cos(np.pi * arg / _INTERP_HALF), 0.0)
    amps = np.sqrt(powers)
    freqs = spec.doppler * np.cos(rng.uniform(0, 2 * np.pi, (delays.size, _SINUSOIDS)))
    phases = rng.uniform(0, 2 * np.pi, (delays.size, _SINUSOIDS))
    if spec.doppler == 0:  # static paths: one FIR with each path's fixed complex gain
        gains = np.array([_path_gain(amps[p], freqs[p], phases[p], np.zeros(1))[0]
                          for p in range(delays.size)])
        return (gains[:, None] * fir).sum(0)[None, :], None, None, None, None
    return fir, delays, amps, freqs, phases
