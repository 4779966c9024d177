"""Burst OFDM PHY header failures near the detection limit (numpy channel emulator).

Frames of 60 QPSK data symbols with random gaps, CFO 0.3 subcarrier by default, through
``ChannelEmulator`` at each Es/N0; the receiver's counters give detections and header failures
(preambles found whose header failed its CRC). ``--seeds`` streams of 50 frames per point, the
same streams for every run (seeds 0, 10, 20, ...). ``--osd ORDER`` decodes the header with
BP-OSD of that order instead of plain BP-30 (``make_decoder("bp", ..., osd_order=ORDER)``)
and reports the OSD time per word it ran on.

    OMP_NUM_THREADS=1 python benchmarks/phy_header_failures.py [--snr=0,-1,-2,-3] [--seeds 4]
        [--cfo 0.3] [--sro-ppm 0] [--phase-noise 0] [--osd ORDER]

Not part of benchmarks/run_all.py: a few seconds; docs/radio.md quotes it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import genjscc.core.fec.bp as bp_module
from genjscc.core.channel.emulator import ChannelEmulator
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.mapping import constellation
from genjscc.core.phy.burst_ofdm import BurstOfdmConfig, BurstOfdmRx, BurstOfdmTx, FrameHeader

FRAMES_PER_SEED = 50
NUM_SYMBOLS = 60


def run_stream(seed: int, es_n0_db: float, rx: BurstOfdmRx, **channel) -> None:
    """50 frames with random gaps through the emulator into ``rx`` (its counters add up)."""
    rng = np.random.default_rng(seed)
    tx, qpsk = BurstOfdmTx(rx.config), constellation("qpsk")
    stream = [np.zeros(300, np.complex64)]
    for i in range(FRAMES_PER_SEED):
        bits = rng.integers(0, 2, NUM_SYMBOLS * 96).astype(np.uint8)
        symbols = qpsk.map(torch.from_numpy(bits)).numpy()
        stream.append(tx.modulate(symbols, FrameHeader(NUM_SYMBOLS, "qpsk", False, i)))
        stream.append(np.zeros(int(rng.integers(50, 400)), np.complex64))
    emulator = ChannelEmulator(es_n0_db=es_n0_db, seed=seed + 1, **channel)
    rx.receive(emulator(np.concatenate(stream)))


class _TimedOsd:
    """Counts the words and time of the OSD stage (wraps bp.osd_decode)."""

    def __init__(self) -> None:
        self.words, self.seconds = 0, 0.0
        self._inner = bp_module.osd_decode

    def __call__(self, h, llr, order):
        start = time.perf_counter()
        out = self._inner(h, llr, order)
        self.seconds += time.perf_counter() - start
        self.words += len(llr)
        return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr", default="0,-1,-2,-3",
                        help="Es/N0 points, dB, comma list (write --snr=-2,-3)")
    parser.add_argument("--seeds", type=int, default=4, help="streams of 50 frames per point")
    parser.add_argument("--cfo", type=float, default=0.3, help="CFO, subcarriers")
    parser.add_argument("--phase-noise", type=float, default=0.0,
                        help="Wiener phase-noise step per sample, radians")
    parser.add_argument("--sro-ppm", type=float, default=0.0, help="sample-rate offset, ppm")
    parser.add_argument("--osd", type=int, default=None, help="BP-OSD order for the header")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    timer = _TimedOsd()
    bp_module.osd_decode = timer
    cfg = BurstOfdmConfig()
    print(f"header decoder: BP-30{'' if args.osd is None else f' + OSD-{args.osd}'}, "
          f"CFO {args.cfo} sc, {args.sro_ppm} ppm, phase noise {args.phase_noise}, "
          f"{args.seeds * FRAMES_PER_SEED} frames per point")
    print("Es/N0 dB  detections  header failures")
    for snr in (float(v) for v in args.snr.split(",")):
        rx = BurstOfdmRx(cfg)
        if args.osd is not None:
            rx._header_decoder = make_decoder("bp", rx.layout.header_code, num_iters=30,
                                              osd_order=args.osd)
        for s in range(args.seeds):
            run_stream(10 * s, snr, rx, cfo=args.cfo, phase_noise=args.phase_noise,
                       sro_ppm=args.sro_ppm)
        print(f"{snr:8.1f}  {rx.stats.detections:10d}  {rx.stats.header_failures:15d}",
              flush=True)
    if timer.words:
        print(f"OSD ran on {timer.words} words, {1e3 * timer.seconds / timer.words:.1f} ms each")


if __name__ == "__main__":
    main()
