"""Streaming wrapper of the burst receiver: any chunking of a sample stream in, frames out.

Bad input never stops it: non-finite samples (NaN, inf) become zeros and are counted; a frame
cut by the end of the samples seen so far waits for more; the buffer is bounded by the
longest possible frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genjscc.core.phy.burst_ofdm import BurstOfdmRx, RxFrame
from genjscc.core.phy.preamble import Detection

__all__ = ["StreamCounters", "StreamReceiver"]


@dataclass
class StreamCounters:
    """What the stream receiver saw: samples in, samples replaced, samples dropped unread."""

    samples: int = 0
    non_finite: int = 0
    overflow_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class StreamReceiver:
    """Feed consecutive chunks with :meth:`push`; get the frames completed so far.

    Args:
        rx: the burst receiver (its ``stats`` keep counting).
        chunk: samples gathered before a detection pass (larger: less overhead per sample,
            more latency).
        max_buffer: samples kept at most; older ones are dropped (counted) so that a stream
            of garbage cannot grow memory. Default: the longest frame plus one chunk.
    """

    def __init__(self, rx: BurstOfdmRx, chunk: int = 1 << 15, max_buffer: int | None = None):
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        self.rx = rx
        self.chunk = chunk
        cfg = rx.config
        longest = cfg.frame_len(rx.num_symbols or 4095)
        self.max_buffer = max_buffer or longest + 2 * chunk
        if self.max_buffer < cfg.frame_len(1) + chunk:
            raise ValueError("max_buffer must hold at least one shortest frame plus a chunk")
        self.counters = StreamCounters()
        self._buf = np.zeros(0, np.complex64)
        self._offset = 0  # absolute index of _buf[0]
        self._need = chunk  # buffer size that triggers the next detection pass

    def push(self, samples: np.ndarray, flush: bool = False) -> list[RxFrame]:
        """Add samples; return frames completed (``start``/``end`` are absolute indices).

        ``flush``: run a detection pass now even with less than ``chunk`` new samples.
        """
        x = np.asarray(samples, dtype=np.complex64).reshape(-1)
        self.counters.samples += x.size
        bad = ~np.isfinite(x)
        if bad.any():
            x = np.where(bad, np.complex64(0), x)
            self.counters.non_finite += int(bad.sum())
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x.copy()
        if self._buf.size < self._need and not flush:
            return []
        return self._process()

    def _process(self) -> list[RxFrame]:
        cfg = self.rx.config
        incomplete: list[Detection] = []
        frames = self.rx.receive(self._buf, incomplete)
        keep_from = self._buf.size - (cfg.preamble_len - 1)  # starts not yet testable
        if frames:
            # Keep a cyclic prefix before the end: the next frame may start that early.
            keep_from = max(keep_from, max(f.end for f in frames) - cfg.cp_len)
        if incomplete:
            keep_from = min(keep_from, min(d.start for d in incomplete))
        keep_from = max(0, min(keep_from, self._buf.size))
        if self._buf.size - keep_from > self.max_buffer:
            drop = self._buf.size - keep_from - self.max_buffer
            self.counters.overflow_dropped += drop
            keep_from += drop
        for f in frames:
            f.start += self._offset
            f.end += self._offset
        self._offset += keep_from
        self._buf = self._buf[keep_from:]
        # Next pass when a chunk of new samples has arrived, or, when a frame waits whose
        # header told its length, once all of it is here (no header decoded twice).
        self._need = self._buf.size + self.chunk
        ends = [d.frame_end for d in incomplete if d.frame_end is not None]
        if ends and len(ends) == len(incomplete):
            self._need = max(self._need, max(ends) - keep_from + cfg.cp_len)
        return frames
