"""Thin GNU Radio blocks around the burst OFDM PHY of ``genjscc.core.phy``.

``burst_ofdm_tx``: PDUs in, complex baseband out (one frame per PDU; zeros between frames in
continuous mode; ``tx_sob``/``tx_eob`` tags around each frame for a USRP sink in burst mode).
``burst_ofdm_rx``: complex baseband in, one PDU of equalized payload symbols per frame, with
the per-frame SNR and per-symbol noise variance in the metadata.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._pdu import PduError, keep_alive, make_pdu, parse_pdu, uniform_vector
from genjscc.core.mapping import constellation
from genjscc.core.phy.burst_ofdm import BurstOfdmConfig, BurstOfdmRx, BurstOfdmTx, FrameHeader
from genjscc.core.phy.stream import StreamReceiver
from gnuradio import gr

__all__ = ["burst_ofdm_rx", "burst_ofdm_tx"]

PORT_IN = pmt.intern("in")
PORT_OUT = pmt.intern("out")
TAG_SOB = pmt.intern("tx_sob")
TAG_EOB = pmt.intern("tx_eob")
KEY_SNR_DB = pmt.intern("snr_db")
KEY_NOISE_VAR = pmt.intern("noise_var")
KEY_CHANNEL_NOISE_VAR = pmt.intern("channel_noise_var")
KEY_MODULATION = pmt.intern("modulation")
KEY_NUM_BITS = pmt.intern("num_bits")
KEY_ANALOG = pmt.intern("analog")
KEY_FRAME_COUNTER = pmt.intern("frame_counter")
KEY_CFO = pmt.intern("cfo")
KEY_SRO_PPM = pmt.intern("sro_ppm")
KEY_FRAME_START = pmt.intern("frame_start")
_IDLE_WAIT_S = 0.005  # burst mode: how long work() waits for a frame before returning 0


def _config(fft_len: int, cp_len: int) -> BurstOfdmConfig:
    return BurstOfdmConfig(fft_len=fft_len, cp_len=cp_len)


class burst_ofdm_tx(gr.sync_block):
    """Burst OFDM transmitter: one frame per PDU.

    Input (message ``in``): PDU of u8 bytes (mapped with ``modulation``, MSB first; the
    header says ``modulation``) or of c32 unit-energy symbols (sent as analog symbols; the
    header's analog flag is set). Up to 4095 OFDM symbols per frame.
    Output (stream, c32): frames; with ``continuous`` zeros fill the time between frames
    (a ZeroMQ link or a file), else work() returns no samples while idle (a USRP in burst
    mode). With ``burst_tags`` the first sample of each frame carries ``tx_sob`` and the last
    ``tx_eob`` (PMT true).
    Malformed PDUs are logged, counted (``num_errors()``) and dropped.
    """

    def __init__(self, modulation: str = "qpsk", fft_len: int = 64, cp_len: int = 16,
                 continuous: bool = True, burst_tags: bool = False, gap: int = 0):
        gr.sync_block.__init__(self, name="genjscc_burst_ofdm_tx", in_sig=None,
                               out_sig=[np.complex64])
        keep_alive(self)
        if gap < 0:
            raise ValueError(f"gap must be >= 0 samples, got {gap}")
        self.tx = BurstOfdmTx(_config(fft_len, cp_len))
        self.constellation = constellation(modulation)
        self.continuous, self.burst_tags, self.gap = continuous, burst_tags, int(gap)
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._ready = threading.Condition()
        self._current: np.ndarray | None = None
        self._pos = 0
        self._counter = 0
        self._num_frames = 0
        self._num_errors = 0
        self.message_port_register_in(PORT_IN)
        self.set_msg_handler(PORT_IN, self._handle)

    def _handle(self, msg: pmt.pmt_base) -> None:
        try:
            frame = self._frame(msg)
        except (PduError, ValueError) as err:
            self._num_errors += 1
            self.logger.warn(f"dropped a PDU: {err}")
            return
        with self._ready:
            self._queue.append(frame)
            self._ready.notify()

    def _frame(self, msg: pmt.pmt_base) -> np.ndarray:
        if not pmt.is_pair(msg):
            raise PduError("expected a PDU (pair of metadata and vector)")
        analog = pmt.is_c32vector(pmt.cdr(msg))
        if analog:
            _, symbols = parse_pdu(msg, "c32")
        else:
            _, data = parse_pdu(msg, "u8")
            bits = np.unpackbits(data)
            bps = self.constellation.bits_per_symbol
            if bits.size == 0 or bits.size % bps:
                raise PduError(f"{data.size} bytes do not fill whole {self.constellation.name} "
                               f"symbols; pad the payload to a multiple of {bps} bits")
            symbols = self.constellation.map(torch.from_numpy(bits)).numpy()
        if symbols.size == 0:
            raise PduError("empty payload")
        cfg = self.tx.config
        header = FrameHeader(cfg.symbols_for(symbols.size), self.constellation.name, analog,
                             self._counter) if cfg.header else None
        frame = self.tx.modulate(symbols, header)
        self._counter = (self._counter + 1) & 0xFFFF
        if self.gap:
            frame = np.concatenate([frame, np.zeros(self.gap, np.complex64)])
        return frame

    def work(self, input_items, output_items):
        out = output_items[0]
        written = 0
        while written < out.size:
            if self._current is None:
                with self._ready:
                    if not self._queue and not self.continuous and written == 0:
                        self._ready.wait(_IDLE_WAIT_S)
                    if not self._queue:
                        break
                    self._current, self._pos = self._queue.popleft(), 0
                if self.burst_tags:
                    self.add_item_tag(0, self.nitems_written(0) + written, TAG_SOB, pmt.PMT_T)
            n = min(out.size - written, self._current.size - self._pos)
            out[written : written + n] = self._current[self._pos : self._pos + n]
            written += n
            self._pos += n
            if self._pos == self._current.size:
                if self.burst_tags:
                    self.add_item_tag(0, self.nitems_written(0) + written - 1, TAG_EOB,
                                      pmt.PMT_T)
                self._current = None
                self._num_frames += 1
        if self.continuous and written < out.size:
            out[written:] = 0
            written = out.size
        return written

    def num_frames(self) -> int:
        """Frames written to the output completely."""
        return self._num_frames

    def num_queued(self) -> int:
        """Frames waiting to be written (plus the one being written)."""
        return len(self._queue) + (self._current is not None)

    def num_errors(self) -> int:
        """Input PDUs dropped as malformed."""
        return self._num_errors


class burst_ofdm_rx(gr.sync_block):
    """Burst OFDM receiver: complex baseband in, one PDU per frame out.

    Input (stream, c32): baseband at any level (the detector is normalized); NaN/inf samples
    are replaced by zeros and counted.
    Output (message ``out``): PDU of c32 equalized payload symbols (all data subcarriers of
    the frame's OFDM symbols, zero-padded tail included). Metadata: ``snr_db`` (Es/N0 per data
    subcarrier, averaged over the band), ``noise_var`` (f32 per symbol, post-equalization N0
    for ``soft_demapper``), ``channel_noise_var`` (N0 before equalization), ``modulation``,
    ``num_bits`` (digital frames), ``analog``, ``frame_counter`` (16 bits), ``cfo``
    (subcarriers), ``sro_ppm``, ``frame_start`` (sample index).
    """

    def __init__(self, fft_len: int = 64, cp_len: int = 16, chunk: int = 1 << 15):
        gr.sync_block.__init__(self, name="genjscc_burst_ofdm_rx", in_sig=[np.complex64],
                               out_sig=None)
        keep_alive(self)
        self.rx = BurstOfdmRx(_config(fft_len, cp_len))
        self.stream = StreamReceiver(self.rx, chunk=chunk)
        self.message_port_register_out(PORT_OUT)
        self._lock = threading.Lock()

    def work(self, input_items, output_items):
        x = input_items[0]
        with self._lock:
            frames = self.stream.push(x)
        for frame in frames:
            self.message_port_pub(PORT_OUT, self._pdu(frame))
        return x.size

    def flush(self) -> int:
        """Run a detection pass on what is buffered now; returns the PDUs published."""
        with self._lock:
            frames = self.stream.push(np.zeros(0, np.complex64), flush=True)
        for frame in frames:
            self.message_port_pub(PORT_OUT, self._pdu(frame))
        return len(frames)

    @staticmethod
    def _pdu(frame) -> pmt.pmt_base:
        h = frame.header
        meta = pmt.make_dict()
        meta = pmt.dict_add(meta, KEY_SNR_DB, pmt.from_double(frame.snr_db))
        meta = pmt.dict_add(meta, KEY_NOISE_VAR, uniform_vector(frame.noise_var))
        meta = pmt.dict_add(meta, KEY_CHANNEL_NOISE_VAR, pmt.from_double(frame.channel_noise_var))
        meta = pmt.dict_add(meta, KEY_CFO, pmt.from_double(frame.cfo))
        meta = pmt.dict_add(meta, KEY_SRO_PPM, pmt.from_double(frame.sro_ppm))
        meta = pmt.dict_add(meta, KEY_FRAME_START, pmt.from_uint64(int(frame.start)))
        if h is not None:
            meta = pmt.dict_add(meta, KEY_MODULATION, pmt.intern(h.modulation))
            meta = pmt.dict_add(meta, KEY_ANALOG, pmt.from_bool(h.analog))
            meta = pmt.dict_add(meta, KEY_FRAME_COUNTER, pmt.from_long(h.counter))
            if not h.analog:
                bps = constellation(h.modulation).bits_per_symbol
                meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(frame.symbols.size * bps))
        return make_pdu(meta, frame.symbols)

    def stats(self) -> dict[str, int]:
        """Counters: detections, frames, header_failures, truncated, samples, non_finite,
        overflow_dropped."""
        with self._lock:
            return {**self.rx.stats.as_dict(), **self.stream.counters.as_dict()}

    def num_frames(self) -> int:
        """Frames delivered as PDUs."""
        return self.rx.stats.frames
