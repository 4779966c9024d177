"""Burst OFDM PHY: frame builder and receiver in numpy/torch, no GNU Radio.

Frame (samples, defaults in brackets)::

    preamble            period * repeats          [8 * 64 = 512]  detection, CFO, timing
    training            2 cp_len + M fft_len      [32 + 2 * 64]   channel and noise estimate
    header (optional)   H (fft_len + cp_len)      [4 * 80]        5G LDPC-coded QPSK header
    data                N (fft_len + cp_len)                      payload + pilots

Levels: every active subcarrier carries unit energy (``E|X|^2 = 1``) and the transforms are
orthonormal, so complex white noise of variance ``N0`` per sample has variance ``N0`` on every
subcarrier: **Es/N0 per data subcarrier symbol = 1 / N0**. The average power per sample of
the data part (and of the preamble) is ``num_active / fft_len`` (52/64 with the defaults), so
the SNR per sample is ``Es/N0 + 10 log10(num_active / fft_len)`` dB.

Receiver, for every frame (all frames found in one pass are estimated together, as arrays
with a frame axis): preamble detection (:mod:`.preamble`: CFO-robust matched filter, CFAR),
CFO from the preamble's FFT bank (integer and fractional part together, +-fft_len/(2 period)
subcarriers), refined from the preamble's segments and then from the repeated training
symbols; timing from the correlation peak, with the FFT windows ``backoff`` samples inside the
cyclic prefix; channel from the averaged training symbols, smoothed across frequency by an
LMMSE filter (uniform delay profile over the cyclic prefix); noise variance from the
differences between the training symbols, pooled with the guard subcarriers; common phase and
sample-clock drift tracked from the pilots; LLRs from the per-subcarrier post-equalization
noise ``(N0 + mse_k) / |H_k|^2`` (sign convention of docs/conventions.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genjscc.core.fec.crc import CRC
from genjscc.core.mapping import MODULATIONS, constellation
from genjscc.core.phy.estimation import (
    ChannelEstimate,
    LmmseSmoother,
    anchored_phase_ramp,
    track_phase_and_timing,
)
from genjscc.core.phy.preamble import Detection, Preamble, PreambleDetector

__all__ = [
    "DEFAULT_DATA_CARRIERS",
    "DEFAULT_PILOT_CARRIERS",
    "BurstOfdmConfig",
    "BurstOfdmRx",
    "BurstOfdmTx",
    "FrameHeader",
    "RxFrame",
    "RxStats",
]

# 802.11a-like allocation: 48 data and 4 pilot carriers of 64, DC and 11 guard carriers empty.
DEFAULT_PILOT_CARRIERS = (-21, -7, 7, 21)
DEFAULT_DATA_CARRIERS = tuple(
    k for k in range(-26, 27) if k != 0 and k not in DEFAULT_PILOT_CARRIERS
)
_PILOT_SEED = 0x9117
_TRAINING_SEED = 0x7A1
_HEADER_INFO_BITS = 32
_HEADER_CRC = "16"
_HEADER_RATE_INV = 8  # header code rate 1/8: it must decode where detection works
# Residual CFO (subcarriers) searched for the header's phase ramp: the CFO estimate errs by at
# most 0.2 subcarrier (99 % within 0.11) at Es/N0 = -3 dB, CFO 0.3, over 600 frames.
_HEADER_MAX_RESIDUAL_CFO = 0.25
_MODULATION_CODES = tuple(MODULATIONS)  # header field value -> modulation name
_BATCH_SYMBOLS = 1 << 14  # OFDM symbols the receiver equalizes in one batch (~16 MB each array)


@dataclass(frozen=True)
class FrameHeader:
    """The fields of the optional frame header (32 bits, CRC-16, 5G LDPC, rate <= 1/8).

    Attributes:
        num_symbols: data OFDM symbols that follow the header (1..4095).
        modulation: payload modulation name (``genjscc.core.mapping.MODULATIONS``).
        analog: True when the payload is analog symbols (Deep JSCC), not mapped bits.
        counter: 16-bit frame counter (wraps; packet layers carry their own sequence numbers).
    """

    num_symbols: int
    modulation: str = "qpsk"
    analog: bool = False
    counter: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.num_symbols <= 4095:
            raise ValueError(f"num_symbols must be in 1..4095, got {self.num_symbols}")
        if self.modulation not in _MODULATION_CODES:
            raise ValueError(f"modulation must be one of {_MODULATION_CODES}")
        if not 0 <= self.counter < 1 << 16:
            raise ValueError(f"counter must be in 0..65535, got {self.counter}")

    def to_bits(self) -> np.ndarray:
        value = (self.num_symbols << 20) | (_MODULATION_CODES.index(self.modulation) << 17) \
            | (int(self.analog) << 16) | self.counter
        return ((value >> np.arange(_HEADER_INFO_BITS - 1, -1, -1)) & 1).astype(np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> FrameHeader | None:
        """Parse 32 bits; None if a field is out of range."""
        value = int(np.sum(bits.astype(np.int64) << np.arange(_HEADER_INFO_BITS - 1, -1, -1)))
        num, mod = value >> 20, (value >> 17) & 7
        if num < 1 or mod >= len(_MODULATION_CODES):
            return None
        return cls(num, _MODULATION_CODES[mod], bool((value >> 16) & 1), value & 0xFFFF)


@dataclass(frozen=True)
class BurstOfdmConfig:
    """Layout of a burst; TX and RX must use equal configs.

    Attributes:
        fft_len, cp_len: FFT size and cyclic prefix (samples).
        data_carriers, pilot_carriers: signed subcarrier indices.
        preamble_period, preamble_repeats: preamble = repeats x period samples; CFO range
            +-fft_len / (2 period) subcarriers.
        num_training: identical training symbols (>= 2) behind a 2 cp_len prefix.
        header: send the coded header (else the RX must be told num_symbols and modulation).
        false_alarm_rate: detector bound per tested noise sample.
        backoff: samples the FFT windows start before the estimated symbol start (paths up to
            ``backoff`` samples earlier than the strongest one stay inside the window).
        track_window: OFDM symbols in the moving average of the pilot phase tracker.
        noise_from_guards: also estimate N0 on the empty guard subcarriers (fine for
            emulated channels; turn off where a radio's filters attenuate the band edges).
    """

    fft_len: int = 64
    cp_len: int = 16
    data_carriers: tuple[int, ...] = DEFAULT_DATA_CARRIERS
    pilot_carriers: tuple[int, ...] = DEFAULT_PILOT_CARRIERS
    preamble_period: int = 8
    preamble_repeats: int = 64
    num_training: int = 2
    header: bool = True
    false_alarm_rate: float = 1e-10
    backoff: int = 4
    track_window: int = 5
    noise_from_guards: bool = True
    header_symbols: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        n = self.fft_len
        if n < 16 or n & (n - 1):
            raise ValueError(f"fft_len must be a power of two >= 16, got {n}")
        if not 0 < self.cp_len < n:
            raise ValueError(f"cp_len must be in (0, fft_len), got {self.cp_len}")
        carriers = list(self.data_carriers) + list(self.pilot_carriers)
        if len(set(carriers)) != len(carriers) or 0 in carriers:
            raise ValueError("data and pilot carriers must be distinct and exclude DC (0)")
        if any(not -n // 2 < k < n // 2 for k in carriers):
            raise ValueError(f"carriers must lie in (-{n // 2}, {n // 2})")
        if len(self.pilot_carriers) < 2 or len(self.data_carriers) < 8:
            raise ValueError("need >= 2 pilot carriers and >= 8 data carriers")
        if self.num_training < 2:
            raise ValueError("need at least 2 training symbols (the noise estimate uses them)")
        if not 0 <= self.backoff < self.cp_len:
            raise ValueError(f"backoff must be in [0, cp_len), got {self.backoff}")
        if self.track_window < 1:
            raise ValueError("track_window must be >= 1")
        # Header: 48 bits (32 + CRC-16) at rate <= 1/8 -> QPSK symbols on the data carriers.
        per_symbol = 2 * len(self.data_carriers)
        object.__setattr__(self, "header_symbols",
                           math.ceil(_HEADER_RATE_INV * (_HEADER_INFO_BITS + 16) / per_symbol)
                           if self.header else 0)

    @property
    def num_active(self) -> int:
        return len(self.data_carriers) + len(self.pilot_carriers)

    @property
    def sample_power(self) -> float:
        """Average power per sample of the OFDM part (and of the preamble)."""
        return self.num_active / self.fft_len

    @property
    def symbol_len(self) -> int:
        return self.fft_len + self.cp_len

    @property
    def preamble_len(self) -> int:
        return self.preamble_period * self.preamble_repeats

    @property
    def training_len(self) -> int:
        return 2 * self.cp_len + self.num_training * self.fft_len

    def frame_len(self, num_symbols: int) -> int:
        """Samples in a frame with ``num_symbols`` data OFDM symbols."""
        return (self.preamble_len + self.training_len
                + (self.header_symbols + num_symbols) * self.symbol_len)

    def symbols_for(self, num_values: int) -> int:
        """Data OFDM symbols needed for ``num_values`` payload symbols."""
        return max(1, math.ceil(num_values / len(self.data_carriers)))


class _Layout:
    """Derived constants shared by TX and RX (pilot/training values, preamble, header code)."""

    def __init__(self, cfg: BurstOfdmConfig):
        self.cfg = cfg
        n = cfg.fft_len
        self.data = np.array(cfg.data_carriers)
        self.pilots = np.array(cfg.pilot_carriers)
        self.active = np.sort(np.concatenate([self.data, self.pilots]))
        self.data_bins = self.data % n
        self.pilot_bins = self.pilots % n
        self.active_bins = self.active % n
        guards = [k for k in range(-n // 2, n // 2) if k not in set(self.active) and k != 0]
        self.guard_bins = np.array(guards, dtype=int) % n
        rng = np.random.default_rng(_TRAINING_SEED)
        self.training = rng.choice([-1.0, 1.0], self.active.size).astype(complex)
        rng = np.random.default_rng(_PILOT_SEED)
        self.pilot_signs = rng.choice([-1.0, 1.0], 127)
        base = np.ones(self.pilots.size)
        base[-1] = -1.0
        self.pilot_base = base
        max_carrier = int(np.abs(self.active).max())
        self.preamble = Preamble(n, cfg.preamble_period, cfg.preamble_repeats, max_carrier,
                                 cfg.sample_power)
        # columns of the data and pilot carriers among the active ones
        self.data_cols = np.searchsorted(self.active, self.data)
        self.pilot_cols = np.searchsorted(self.active, self.pilots)
        self.crc = CRC(_HEADER_CRC)
        self._header_code = None
        self._header_map: tuple[np.ndarray, np.ndarray] | None = None
        # QPSK point of each bit pair (first bit * 2 + second), as constellation("qpsk") maps
        pairs = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.uint8).reshape(-1)
        self._qpsk_points = constellation("qpsk").map(pairs).numpy()
        self._pilots: dict[int, np.ndarray] = {}
        if cfg.header:
            self._header_generator()  # now, not in the first frame's time

    def pilot_values(self, num: int) -> np.ndarray:
        """``[num, P]`` pilot symbols of the first ``num`` header+data OFDM symbols (a
        read-only array, kept per ``num``)."""
        values = self._pilots.get(num)
        if values is None:
            signs = self.pilot_signs[np.arange(num) % self.pilot_signs.size]
            values = signs[:, None] * self.pilot_base[None, :]
            values.flags.writeable = False
            if len(self._pilots) < 64:
                self._pilots[num] = values
        return values

    @property
    def header_code(self):
        if self._header_code is None:
            from genjscc.core.fec.ldpc5g import NR5GLDPC

            e = 2 * len(self.cfg.data_carriers) * self.cfg.header_symbols
            self._header_code = NR5GLDPC(_HEADER_INFO_BITS + 16, e, modulation_order=2)
        return self._header_code

    def header_qpsk(self, headers: list[FrameHeader]) -> np.ndarray:
        """QPSK symbols ``[len(headers), header_symbols * num_data]`` of coded headers.

        CRC-16 and the rate-matched 5G LDPC encoding are linear over GF(2), so the coded bits
        are ``info @ G + c0 (mod 2)`` with ``G`` and ``c0`` taken once from the encoder: one
        integer product per batch instead of an encoder call per frame.
        """
        gen, offset = self._header_generator()
        info = np.stack([h.to_bits() for h in headers]).astype(np.int32)
        coded = (info @ gen + offset) & 1
        return self._qpsk_points[2 * coded[:, 0::2] + coded[:, 1::2]]

    def encode_header(self, bits: np.ndarray) -> np.ndarray:
        """Coded bits uint8 ``[e]`` of 32 header bits: CRC-16, then the 5G LDPC encoder (the
        reference that :meth:`header_qpsk` reproduces by its GF(2) product)."""
        with_crc = self.crc.attach(torch.from_numpy(np.asarray(bits, np.uint8)))
        return self.header_code.encode(with_crc).numpy().astype(np.uint8)

    def _header_generator(self) -> tuple[np.ndarray, np.ndarray]:
        if self._header_map is None:
            offset = self.encode_header(np.zeros(_HEADER_INFO_BITS, np.uint8)).astype(np.int32)
            gen = np.stack([self.encode_header(row).astype(np.int32) ^ offset
                            for row in np.eye(_HEADER_INFO_BITS, dtype=np.uint8)])
            self._header_map = gen, offset
        return self._header_map


@functools.lru_cache(maxsize=8)
def _layout(cfg: BurstOfdmConfig) -> _Layout:
    """The layout of a config, built once per process (the preamble cover search and the
    header code take a while) and shared by every TX and RX of that config."""
    return _Layout(cfg)


class BurstOfdmTx:
    """Build burst frames from payload symbols.

    Args:
        config: the frame layout.
    """

    def __init__(self, config: BurstOfdmConfig | None = None):
        self.config = config or BurstOfdmConfig()
        self.layout = _layout(self.config)

    def header_symbols(self, header: FrameHeader) -> np.ndarray:
        """QPSK symbols ``[header_symbols * num_data]`` of a coded header."""
        return self.layout.header_qpsk([header])[0]

    def modulate(self, payload: np.ndarray | torch.Tensor,
                 header: FrameHeader | None = None) -> np.ndarray:
        """One frame (complex64 samples) carrying ``payload`` symbols.

        Args:
            payload: complex ``[n]`` unit-energy symbols (e.g. ``constellation(m).map(bits)``
                or analog JSCC symbols); padded with zeros to whole OFDM symbols.
            header: the header to send (required when ``config.header``; its
                ``num_symbols`` must equal ``config.symbols_for(n)``).
        """
        cfg, lay = self.config, self.layout
        values = np.asarray(payload, dtype=np.complex128).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise ValueError("payload symbols must be finite")
        num = cfg.symbols_for(values.size)
        if num > 4095:
            raise ValueError(f"{values.size} symbols need {num} > 4095 OFDM symbols; split them")
        grid = np.zeros((num, len(cfg.data_carriers)), complex)
        grid.reshape(-1)[: values.size] = values
        head = np.zeros((0, len(cfg.data_carriers)), complex)
        if cfg.header:
            if header is None:
                raise ValueError("this config sends a header: pass header=FrameHeader(...)")
            if header.num_symbols != num:
                raise ValueError(f"header.num_symbols={header.num_symbols}, payload needs {num}")
            head = self.header_symbols(header).reshape(cfg.header_symbols, -1)
        elif header is not None:
            raise ValueError("this config sends no header (config.header is False)")
        body = np.concatenate([head, grid])
        spectra = np.zeros((body.shape[0], cfg.fft_len), complex)
        spectra[:, lay.data_bins] = body
        spectra[:, lay.pilot_bins] = lay.pilot_values(body.shape[0])
        symbols = np.fft.ifft(spectra, norm="ortho")
        with_cp = np.concatenate([symbols[:, -cfg.cp_len :], symbols], axis=1).reshape(-1)
        train_spec = np.zeros(cfg.fft_len, complex)
        train_spec[lay.active_bins] = lay.training
        train = np.fft.ifft(train_spec, norm="ortho")
        training = np.concatenate([train[-2 * cfg.cp_len :], np.tile(train, cfg.num_training)])
        frame = np.concatenate([lay.preamble.samples, training, with_cp])
        return frame.astype(np.complex64)


@dataclass
class RxFrame:
    """One received frame.

    Attributes:
        row, start: batch row and sample index of the preamble start in the input.
        end: sample index just after the frame.
        cfo: carrier frequency offset, subcarriers (cycles per sample * fft_len).
        sro_ppm: sample-rate offset estimated from the pilots, parts per million, in the
            emulator's convention (> 0: the receiver's clock runs slow).
        header: the decoded header (None when the config has none).
        symbols: complex64 ``[num_symbols * num_data]`` equalized payload symbols.
        noise_var: float32, same shape: post-equalization noise variance of each symbol
            (feed it to ``Constellation.demap``).
        channel_noise_var: N0 per subcarrier before equalization.
        snr_db: mean over data subcarriers of ``E|H_k|^2 / N0`` (Es/N0 per data subcarrier).
        metric: detector correlation ``rho2``.
    """

    row: int
    start: int
    end: int
    cfo: float
    sro_ppm: float
    header: FrameHeader | None
    symbols: np.ndarray
    noise_var: np.ndarray
    channel_noise_var: float
    snr_db: float
    metric: float

    def llr(self, modulation: str | None = None) -> torch.Tensor:
        """Exact LLRs ``ln P(b=0)/P(b=1)`` of the payload bits (float32)."""
        name = modulation or (self.header.modulation if self.header else None)
        if name is None:
            raise ValueError("no header: name the modulation")
        return constellation(name).demap(torch.from_numpy(self.symbols),
                                         torch.from_numpy(self.noise_var))


@dataclass
class RxStats:
    """Counters of a receiver (cumulative).

    ``detections`` = ``frames`` + ``header_failures`` (preambles whose frame was complete);
    ``truncated`` counts frames cut off at the end of a non-streaming ``receive``.
    """

    detections: int = 0
    frames: int = 0
    header_failures: int = 0
    truncated: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class BurstOfdmRx:
    """Detect and demodulate burst frames.

    All frames found in one :meth:`receive` call go through each estimation step together
    (numpy arrays with a leading frame axis, one BP call for all headers), so the per-frame
    cost is a few array rows, not a few hundred small numpy calls.

    Args:
        config: the frame layout (equal to the transmitter's).
        num_symbols, modulation: payload size and modulation when the config has no header.
    """

    def __init__(self, config: BurstOfdmConfig | None = None, num_symbols: int | None = None,
                 modulation: str = "qpsk"):
        self.config = cfg = config or BurstOfdmConfig()
        if not cfg.header and num_symbols is None:
            raise ValueError("without a header the receiver needs num_symbols")
        self.layout = _layout(cfg)
        self.detector = PreambleDetector(self.layout.preamble, cfg.false_alarm_rate)
        self.num_symbols = num_symbols
        self.modulation = modulation
        self.stats = RxStats()
        self._smoother = LmmseSmoother(self.layout.active, cfg.fft_len, cfg.cp_len + 1)
        self._header_decoder = None
        if cfg.header:
            from genjscc.core.fec.decoders import make_decoder

            self._header_decoder = make_decoder("bp", self.layout.header_code, num_iters=30)

    def receive(self, samples: np.ndarray | torch.Tensor,
                incomplete: list[Detection] | None = None) -> list[RxFrame]:
        """All frames found in ``samples`` (complex ``[T]`` or ``[B, T]``).

        Frames that run past the end are skipped: appended to ``incomplete`` when it is given
        (a streaming caller keeps their samples for the next call), otherwise counted in
        ``stats.truncated``.
        """
        x = torch.as_tensor(samples)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        x = x.to(torch.complex64)
        if x.shape[1] < self.config.preamble_len:
            return []
        detections = self.detector.detect(x)
        if not detections:
            return []
        return self._demodulate(x.numpy(), detections, incomplete)

    def _demodulate(self, x: np.ndarray, dets: list[Detection],
                    incomplete: list[Detection] | None) -> list[RxFrame]:
        """Frames of the detections ``dets`` in the streams ``x`` (``[B, T]``), in order."""
        cfg = self.config
        size = x.shape[1]
        starts = np.array([d.start for d in dets])
        train0 = starts + cfg.preamble_len + 2 * cfg.cp_len - cfg.backoff
        body0 = train0 + cfg.num_training * cfg.fft_len + cfg.cp_len
        ready = (starts + cfg.preamble_len + cfg.training_len + cfg.cp_len <= size) \
            & (body0 + (cfg.header_symbols or 1) * cfg.symbol_len <= size)
        cand = np.flatnonzero(ready)
        slot = np.cumsum(ready) - 1  # candidate row of each ready detection
        acq = self._acquire(x, [dets[i] for i in cand], train0[cand]) if cand.size else None
        headers = self._read_headers(x, acq, body0[cand]) if cfg.header and cand.size else None
        kept: list[tuple[int, FrameHeader | None, int]] = []  # (detection, header, total)
        last_end: dict[int, int] = {}
        for i, det in enumerate(dets):
            # A correlation inside a frame already decoded; the next frame may start a few
            # samples before the estimated end (timing error, sample-rate offset).
            if det.start < last_end.get(det.row, 0) - cfg.cp_len:
                continue
            if not ready[i]:
                self._cut(det, incomplete)
                continue
            header, num = None, self.num_symbols
            if cfg.header:
                header = headers[slot[i]]
                if header is None:
                    self.stats.detections += 1
                    self.stats.header_failures += 1
                    continue
                num = header.num_symbols
            total = cfg.header_symbols + num
            if body0[i] + total * cfg.symbol_len > size:
                end = det.start + cfg.frame_len(num)
                self._cut(dataclasses.replace(det, frame_end=end), incomplete)
                continue
            self.stats.detections += 1
            self.stats.frames += 1
            kept.append((i, header, total))
            last_end[det.row] = int(body0[i] + total * cfg.symbol_len - cfg.cp_len + cfg.backoff)
        frames: dict[int, RxFrame] = {}
        for total in sorted({t for _, _, t in kept}):
            group = [(i, h) for i, h, t in kept if t == total]
            # frames of one length together, at most _BATCH_SYMBOLS OFDM symbols at a time
            # (bounded memory when a long recording holds many long frames)
            step = max(1, _BATCH_SYMBOLS // total)
            for part in range(0, len(group), step):
                idx = np.array([i for i, _ in group[part : part + step]])
                frames.update(zip(idx.tolist(), self._bodies(
                    x, [dets[i] for i in idx], acq.take(slot[idx]), train0[idx], body0[idx],
                    total, [h for _, h in group[part : part + step]]), strict=True))
        return [frames[i] for i, _, _ in kept]

    # -- the stages, each over a batch of frames ----------------------------------------------

    def _acquire(self, x: np.ndarray, dets: list[Detection], train0: np.ndarray) -> _Acquired:
        """CFO, training symbols, first channel and noise estimates of the frames ``dets``."""
        cfg, lay = self.config, self.layout
        rows = np.array([d.row for d in dets])
        starts = np.array([d.start for d in dets])
        segments = x[rows[:, None], starts[:, None] + np.arange(cfg.preamble_len)]
        cfo = self.detector.refine_cfos(segments, np.array([d.cfo for d in dets]))
        train_starts = train0[:, None] + cfg.fft_len * np.arange(cfg.num_training)
        train = self._spectra(x, rows, train_starts, cfo)[..., lay.active_bins]
        # Residual CFO from the phase advance between the repeated training symbols.
        advance = np.sum(train[:, 1:] * np.conj(train[:, :-1]), axis=(1, 2))
        cfo = cfo + np.angle(advance) / (2 * np.pi * cfg.fft_len)
        train = self._spectra(x, rows, train_starts, cfo)[..., lay.active_bins]
        mean = train.mean(1)
        dev_sum = np.sum(np.abs(train - mean[:, None]) ** 2, axis=(1, 2))
        dev_dof = (cfg.num_training - 1) * lay.active.size
        noise_var = dev_sum / dev_dof
        ls = mean / lay.training
        est = self._smoother(ls, noise_var / cfg.num_training)
        return _Acquired(rows, cfo, ls, dev_sum, noise_var, est)

    def _read_headers(self, x: np.ndarray, acq: _Acquired,
                      body0: np.ndarray) -> list[FrameHeader | None]:
        """Decoded headers (None where the CRC or a field fails), one BP call for all."""
        cfg, lay = self.config, self.layout
        num = cfg.header_symbols
        head = self._spectra(x, acq.rows, body0[:, None] + cfg.symbol_len * np.arange(num),
                             acq.cfo)
        gain, mse = acq.est.gain, acq.est.mse
        ref = lay.pilot_values(num)[None] * gain[:, None, lay.pilot_cols]
        # The header's common phase is the residual-CFO ramp from the training symbols (where
        # the channel estimate fixes the phase): one unknown from 4 x 4 pilots. A free line
        # (offset and slope) over the 4 symbols erred by 50-100 degrees at the last ones in
        # most header failures at -2 dB.
        centre = (cfg.num_training + 1) / 2 * cfg.fft_len + cfg.cp_len  # training -> header
        offsets = centre + cfg.symbol_len * np.arange(num, dtype=float)
        phi = anchored_phase_ramp(head[..., lay.pilot_bins], ref, offsets,
                                  _HEADER_MAX_RESIDUAL_CFO / cfg.fft_len)
        h_d, mse_d = gain[:, lay.data_cols], mse[:, lay.data_cols]
        eq = head[..., lay.data_bins] * np.exp(-1j * phi)[..., None] / h_d[:, None, :]
        nv = np.broadcast_to(((acq.noise_var[:, None] + mse_d)
                              / np.maximum(np.abs(h_d) ** 2, 1e-30))[:, None, :], eq.shape)
        batch = eq.shape[0]
        llr = constellation("qpsk").demap(
            torch.from_numpy(eq.reshape(batch, -1).astype(np.complex64)),
            torch.from_numpy(nv.reshape(batch, -1).astype(np.float32)))
        code = lay.header_code
        bits = self._header_decoder(code.rate_recover(llr))[:, : code.k]
        valid = lay.crc.check(bits).tolist()
        info = bits[:, :_HEADER_INFO_BITS].numpy()
        return [FrameHeader.from_bits(info[i]) if ok else None for i, ok in enumerate(valid)]

    def _bodies(self, x: np.ndarray, dets: list[Detection], acq: _Acquired, train0: np.ndarray,
                body0: np.ndarray, total: int, headers: list[FrameHeader | None]) -> list[RxFrame]:
        """Equalized frames of ``total`` header+data symbols each."""
        cfg, lay = self.config, self.layout
        m, num_head = cfg.num_training, cfg.header_symbols
        body = self._spectra(x, acq.rows, body0[:, None] + cfg.symbol_len * np.arange(total),
                             acq.cfo)
        # Pilot tracking over header and data symbols; the offsets from the training symbols
        # are the same for every frame.
        ref = lay.pilot_values(total)[None] * acq.est.gain[:, None, lay.pilot_cols]
        offsets = ((body0[0] + cfg.symbol_len * np.arange(total))
                   - (train0[0] + (m - 1) * cfg.fft_len / 2)).astype(float)
        phi, delta = track_phase_and_timing(body[..., lay.pilot_bins], ref, lay.pilots, offsets,
                                            cfg.fft_len, cfg.track_window)
        noise_var = acq.noise_var
        if cfg.noise_from_guards and lay.guard_bins.size:
            guard = body[..., lay.guard_bins]
            dev_dof = (m - 1) * lay.active.size
            noise_var = (acq.dev_sum + np.sum(np.abs(guard) ** 2, axis=(1, 2))) \
                / (dev_dof + guard[0].size)
        rot = np.exp(-1j * phi[..., None] + 2j * np.pi * lay.active[None, None, :]
                     * delta[:, None, None] * offsets[None, :, None] / cfg.fft_len)
        active = body[..., lay.active_bins] * rot
        est = acq.est
        if cfg.header:
            # The decoded headers (CRC-checked) are known data: with the training symbols they
            # give m + H symbols for the channel estimate instead of m.
            known = np.empty((len(headers), num_head, lay.active.size), complex)
            known[..., lay.data_cols] = lay.header_qpsk(headers).reshape(len(headers), num_head, -1)
            known[..., lay.pilot_cols] = lay.pilot_values(num_head)[None]
            ls_head = np.mean(active[:, :num_head] / known, axis=1)
            count = m + num_head
            ls = (m * acq.ls + num_head * ls_head) / count
            est = self._smoother(ls, noise_var / count)
        h_d, mse_d = est.gain[:, lay.data_cols], est.mse[:, lay.data_cols]
        data = active[:, num_head:, lay.data_cols]
        power = np.abs(h_d) ** 2
        # E|H|^2 = E|H_hat|^2 + mse for an MMSE estimate: unbiased at low SNR too.
        snr = np.mean(power + mse_d, axis=1) / np.maximum(noise_var, 1e-30)
        symbols = (data / h_d[:, None, :]).reshape(len(dets), -1).astype(np.complex64)
        nv = ((noise_var[:, None] + mse_d) / np.maximum(power, 1e-30)).astype(np.float32)
        nv = np.broadcast_to(nv[:, None, :], data.shape).reshape(len(dets), -1)
        end = body0 + total * cfg.symbol_len - cfg.cp_len + cfg.backoff
        return [
            RxFrame(row=det.row, start=det.start, end=int(end[j]), cfo=float(acq.cfo[j])
                    * cfg.fft_len, sro_ppm=float(-delta[j] * 1e6), header=headers[j],
                    symbols=symbols[j], noise_var=nv[j],
                    channel_noise_var=float(noise_var[j]),
                    snr_db=10 * math.log10(max(float(snr[j]), 1e-30)), metric=det.metric)
            for j, det in enumerate(dets)
        ]

    # -- helpers ------------------------------------------------------------------------------

    def _cut(self, det: Detection, incomplete: list[Detection] | None) -> None:
        if incomplete is None:
            self.stats.truncated += 1
        else:
            incomplete.append(det)

    def _spectra(self, x: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                 cfo: np.ndarray) -> np.ndarray:
        """Orthonormal FFTs ``[N, S, fft_len]`` of the windows at ``starts`` (``[N, S]``) of
        stream ``rows[i]`` after removing each frame's CFO ``cfo[i]`` (cycles/sample)."""
        idx = starts[..., None] + np.arange(self.config.fft_len)
        window = x[rows[:, None, None], idx].astype(np.complex128) \
            * np.exp(-2j * np.pi * cfo[:, None, None] * idx)
        return np.fft.fft(window, norm="ortho")


@dataclass(frozen=True)
class _Acquired:
    """What the receiver knows of a batch of frames after the training symbols (row i: one
    frame): stream row, CFO (cycles/sample), LS channel of the training symbols, the sum of
    squared deviations between them and N0 from it, the LMMSE estimate."""

    rows: np.ndarray
    cfo: np.ndarray
    ls: np.ndarray
    dev_sum: np.ndarray
    noise_var: np.ndarray
    est: ChannelEstimate

    def take(self, index: np.ndarray) -> _Acquired:
        est = ChannelEstimate(self.est.gain[index], self.est.mse[index], self.est.power[index])
        return _Acquired(self.rows[index], self.cfo[index], self.ls[index],
                         self.dev_sum[index], self.noise_var[index], est)
