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

Receiver, per frame: preamble detection (:mod:`.preamble`: CFO-robust matched filter, CFAR),
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
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genjscc.core.fec.crc import CRC
from genjscc.core.mapping import MODULATIONS, constellation
from genjscc.core.phy.estimation import lmmse_channel, track_phase_and_timing
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
_MODULATION_CODES = tuple(MODULATIONS)  # header field value -> modulation name


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
        self._header_code = None

    def pilot_values(self, num: int) -> np.ndarray:
        """``[num, P]`` pilot symbols of the first ``num`` header+data OFDM symbols."""
        signs = self.pilot_signs[np.arange(num) % self.pilot_signs.size]
        return signs[:, None] * self.pilot_base[None, :]

    @property
    def header_code(self):
        if self._header_code is None:
            from genjscc.core.fec.ldpc5g import NR5GLDPC

            e = 2 * len(self.cfg.data_carriers) * self.cfg.header_symbols
            self._header_code = NR5GLDPC(_HEADER_INFO_BITS + 16, e, modulation_order=2)
        return self._header_code


def _header_qpsk(layout: _Layout, crc: CRC, header: FrameHeader) -> np.ndarray:
    bits = torch.from_numpy(header.to_bits())
    coded = layout.header_code.encode(crc.attach(bits))
    return constellation("qpsk").map(coded).numpy()


class BurstOfdmTx:
    """Build burst frames from payload symbols.

    Args:
        config: the frame layout.
    """

    def __init__(self, config: BurstOfdmConfig | None = None):
        self.config = config or BurstOfdmConfig()
        self.layout = _Layout(self.config)
        self._crc = CRC(_HEADER_CRC)

    def header_symbols(self, header: FrameHeader) -> np.ndarray:
        """QPSK symbols ``[header_symbols * num_data]`` of a coded header."""
        return _header_qpsk(self.layout, self._crc, header)

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

    Args:
        config: the frame layout (equal to the transmitter's).
        num_symbols, modulation: payload size and modulation when the config has no header.
    """

    def __init__(self, config: BurstOfdmConfig | None = None, num_symbols: int | None = None,
                 modulation: str = "qpsk"):
        self.config = cfg = config or BurstOfdmConfig()
        if not cfg.header and num_symbols is None:
            raise ValueError("without a header the receiver needs num_symbols")
        self.layout = _Layout(cfg)
        self.detector = PreambleDetector(self.layout.preamble, cfg.false_alarm_rate)
        self.num_symbols = num_symbols
        self.modulation = modulation
        self.stats = RxStats()
        self._crc = CRC(_HEADER_CRC)
        self._header_decoder = None

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
        x_np = x.numpy()
        frames: list[RxFrame] = []
        detections = self.detector.detect(x)
        last_end: dict[int, int] = {}
        for det in detections:
            # A correlation inside a frame already decoded; the next frame may start a few
            # samples before the estimated end (timing error, sample-rate offset).
            if det.start < last_end.get(det.row, 0) - self.config.cp_len:
                continue
            frame = self.demodulate(x_np[det.row], det, incomplete)
            if frame is not None:
                frames.append(frame)
                last_end[det.row] = frame.end
        return frames

    def demodulate(self, x: np.ndarray, det: Detection,
                   incomplete: list[Detection] | None = None) -> RxFrame | None:
        """Demodulate the frame whose preamble ``det`` found in the stream ``x`` (``[T]``).

        Returns None if the header fails (counted) or the frame is cut (appended to
        ``incomplete`` if given, else counted in ``stats.truncated``).
        """
        cfg, lay = self.config, self.layout
        if det.start + cfg.preamble_len + cfg.training_len + cfg.cp_len > x.size:
            return self._cut(det, incomplete)
        cfo = self.detector.refine_cfo(x, det.start, det.cfo)
        train0 = det.start + cfg.preamble_len + 2 * cfg.cp_len - cfg.backoff
        body0 = train0 + cfg.num_training * cfg.fft_len + cfg.cp_len
        if body0 + (cfg.header_symbols or 1) * cfg.symbol_len > x.size:
            return self._cut(det, incomplete)
        train_starts = train0 + cfg.fft_len * np.arange(cfg.num_training)
        train = self._spectra(x, train_starts, cfo)
        # Residual CFO from the phase advance between the repeated training symbols.
        advance = np.sum(train[1:, lay.active_bins] * np.conj(train[:-1, lay.active_bins]))
        cfo += float(np.angle(advance)) / (2 * np.pi * cfg.fft_len)
        train = self._spectra(x, train_starts, cfo)[:, lay.active_bins]
        mean = train.mean(0)
        m = cfg.num_training
        dev_sum = float(np.sum(np.abs(train - mean) ** 2))
        dev_dof = (m - 1) * lay.active.size
        noise_var = dev_sum / dev_dof
        est = lmmse_channel(mean / lay.training, lay.active, cfg.fft_len, cfg.cp_len + 1,
                            noise_var / m)
        gain = dict(zip(lay.active.tolist(), est.gain, strict=True))
        mse = dict(zip(lay.active.tolist(), est.mse, strict=True))

        header = None
        num = self.num_symbols
        if cfg.header:
            head = self._body(x, body0, cfo, cfg.header_symbols)
            header = self._decode_header(head, gain, noise_var, mse)
            if header is None:
                self.stats.detections += 1
                self.stats.header_failures += 1
                return None
            num = header.num_symbols
        total = cfg.header_symbols + num
        if body0 + total * cfg.symbol_len > x.size:
            end = det.start + cfg.frame_len(num)
            return self._cut(dataclasses.replace(det, frame_end=end), incomplete)
        body = self._body(x, body0, cfo, total)
        # Pilot tracking over header and data symbols.
        h_p = np.array([gain[k] for k in lay.pilots])
        ref = lay.pilot_values(total) * h_p[None, :]
        sym_pos = body0 + cfg.symbol_len * np.arange(total)
        offsets = (sym_pos - (train0 + (m - 1) * cfg.fft_len / 2)).astype(float)
        phi, delta = track_phase_and_timing(body[:, lay.pilot_bins], ref, lay.pilots, offsets,
                                            cfg.fft_len, cfg.track_window)
        if cfg.noise_from_guards and lay.guard_bins.size:
            guard = body[:, lay.guard_bins]
            noise_var = (dev_sum + float(np.sum(np.abs(guard) ** 2))) / (dev_dof + guard.size)
        rot = np.exp(-1j * phi[:, None]
                     + 2j * np.pi * lay.active[None, :] * delta * offsets[:, None] / cfg.fft_len)
        active = body[:, lay.active_bins] * rot
        if header is not None:
            # The decoded header (CRC-checked) is known data: with the training symbols it
            # gives m + H symbols for the channel estimate instead of m.
            known = np.zeros((cfg.header_symbols, lay.active.size), complex)
            idx = {k: i for i, k in enumerate(lay.active.tolist())}
            known[:, [idx[k] for k in lay.data.tolist()]] = _header_qpsk(
                lay, self._crc, header).reshape(cfg.header_symbols, -1)
            known[:, [idx[k] for k in lay.pilots.tolist()]] = lay.pilot_values(cfg.header_symbols)
            ls_head = np.mean(active[: cfg.header_symbols] / known, axis=0)
            count = m + cfg.header_symbols
            ls = (m * (mean / lay.training) + cfg.header_symbols * ls_head) / count
            est = lmmse_channel(ls, lay.active, cfg.fft_len, cfg.cp_len + 1, noise_var / count)
            gain = dict(zip(lay.active.tolist(), est.gain, strict=True))
            mse = dict(zip(lay.active.tolist(), est.mse, strict=True))
        h_d = np.array([gain[k] for k in lay.data])
        mse_d = np.array([mse[k] for k in lay.data])
        data_cols = np.searchsorted(lay.active, lay.data)
        data = active[cfg.header_symbols :, data_cols]
        power = np.abs(h_d) ** 2
        # E|H|^2 = E|H_hat|^2 + mse for an MMSE estimate: unbiased at low SNR too.
        snr = float(np.mean(power + mse_d)) / max(noise_var, 1e-30)
        symbols = data / h_d[None, :]
        nv = np.broadcast_to((noise_var + mse_d) / np.maximum(power, 1e-30), symbols.shape)
        self.stats.detections += 1
        self.stats.frames += 1
        return RxFrame(
            row=det.row, start=det.start, end=int(body0 + total * cfg.symbol_len - cfg.cp_len
                                                   + cfg.backoff),
            cfo=cfo * cfg.fft_len, sro_ppm=-delta * 1e6, header=header,
            symbols=symbols.reshape(-1).astype(np.complex64),
            noise_var=np.ascontiguousarray(nv).reshape(-1).astype(np.float32),
            channel_noise_var=noise_var,
            snr_db=10 * math.log10(max(snr, 1e-30)),
            metric=det.metric,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _cut(self, det: Detection, incomplete: list[Detection] | None) -> None:
        if incomplete is None:
            self.stats.truncated += 1
        else:
            incomplete.append(det)
        return None

    def _spectra(self, x: np.ndarray, starts: np.ndarray, cfo: float) -> np.ndarray:
        """Orthonormal FFTs of ``fft_len`` windows at ``starts`` after removing the CFO."""
        n = self.config.fft_len
        idx = starts[:, None] + np.arange(n)[None, :]
        window = x[idx].astype(np.complex128) * np.exp(-2j * np.pi * cfo * idx)
        return np.fft.fft(window, norm="ortho")

    def _body(self, x: np.ndarray, body0: int, cfo: float, count: int) -> np.ndarray:
        starts = body0 + self.config.symbol_len * np.arange(count)
        return self._spectra(x, starts, cfo)

    def _decode_header(self, head: np.ndarray, gain: dict, noise_var: float,
                       mse: dict) -> FrameHeader | None:
        cfg, lay = self.config, self.layout
        ref = lay.pilot_values(cfg.header_symbols) * np.array([gain[k] for k in lay.pilots])
        # One common phase for the few header symbols (a line fitted over them): a phase per
        # symbol from 4 pilots is too noisy near 0 dB.
        offsets = cfg.symbol_len * np.arange(cfg.header_symbols, dtype=float)
        phi, _ = track_phase_and_timing(head[:, lay.pilot_bins], ref, lay.pilots, offsets,
                                        cfg.fft_len, 2 * cfg.header_symbols + 1)
        rot = np.exp(-1j * phi)[:, None]
        h_d = np.array([gain[k] for k in lay.data])
        mse_d = np.array([mse[k] for k in lay.data])
        eq = head[:, lay.data_bins] * rot / h_d[None, :]
        nv = np.broadcast_to((noise_var + mse_d) / np.maximum(np.abs(h_d) ** 2, 1e-30), eq.shape)
        llr = constellation("qpsk").demap(torch.from_numpy(eq.reshape(-1).astype(np.complex64)),
                                          torch.from_numpy(nv.reshape(-1).astype(np.float32)))
        code = lay.header_code
        if self._header_decoder is None:
            from genjscc.core.fec.decoders import make_decoder

            self._header_decoder = make_decoder("bp", code, num_iters=30)
        bits = self._header_decoder(code.rate_recover(llr.unsqueeze(0)))[0, : code.k]
        if not bool(self._crc.check(bits)):
            return None
        return FrameHeader.from_bits(bits[:_HEADER_INFO_BITS].numpy())
