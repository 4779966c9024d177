"""Burst OFDM physical layer in numpy/torch (no GNU Radio); see docs/radio.md.

* :mod:`.preamble` the repeated, cover-coded preamble and its CFO-robust CFAR detector.
* :mod:`.estimation` LMMSE channel smoothing, pilot phase and sample-clock tracking.
* :mod:`.burst_ofdm` frame layout, transmitter, receiver (LLRs, noise and SNR per frame).
"""

from genjscc.core.phy.burst_ofdm import (
    BurstOfdmConfig,
    BurstOfdmRx,
    BurstOfdmTx,
    FrameHeader,
    RxFrame,
    RxStats,
)
from genjscc.core.phy.preamble import Detection, Preamble, PreambleDetector

__all__ = [
    "BurstOfdmConfig",
    "BurstOfdmRx",
    "BurstOfdmTx",
    "Detection",
    "FrameHeader",
    "Preamble",
    "PreambleDetector",
    "RxFrame",
    "RxStats",
]
