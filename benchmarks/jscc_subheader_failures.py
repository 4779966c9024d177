"""Deep JSCC image frames over the burst PHY at low SNR: PHY headers and sub-headers lost.

A 192x128 crop of the sample image (4 frames at ratio 1/6) through the numpy channel emulator
(CFO 0.3 subcarrier, 10 ppm) and the burst OFDM receiver, one noise draw per seed; counts the
frames whose PHY header was lost (or not found) and those whose Deep JSCC sub-header failed
its CRC, per Es/N0.

    python benchmarks/jscc_subheader_failures.py                 # 25 seeds, 0 -1 -2 -3 dB
    python benchmarks/jscc_subheader_failures.py --seeds 100 --snr -2 -3
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from genjscc.core.channel.emulator import ChannelEmulator
from genjscc.core.jscc import load_model, model_name
from genjscc.core.jscc.images import load_image, sample_image_path, to_uint8
from genjscc.core.link.image_frames import ImageCollector, image_frames
from genjscc.core.phy.burst_ofdm import BurstOfdmConfig, BurstOfdmRx, BurstOfdmTx, FrameHeader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=25)
    ap.add_argument("--snr", type=float, nargs="+", default=[0.0, -1.0, -2.0, -3.0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(model_name("1/6"))
    pixels = to_uint8(load_image(sample_image_path()))[:128, :192]
    _, frames = image_frames(pixels, model, 0.0)
    tx, cfg = BurstOfdmTx(), BurstOfdmConfig()
    parts = [np.zeros(300, np.complex64)]
    for i, f in enumerate(frames):
        parts += [tx.modulate(f, FrameHeader(cfg.symbols_for(f.size), "qpsk", True, i)),
                  np.zeros(300, np.complex64)]
    parts.append(np.zeros(cfg.frame_len(cfg.symbols_for(frames[0].size)), np.complex64))
    stream = np.concatenate(parts)
    for snr in args.snr:
        sent = phy_lost = sub_failed = 0
        for seed in range(args.seeds):
            y = ChannelEmulator(es_n0_db=snr, cfo=0.3, sro_ppm=10.0, seed=seed)(stream)
            collector = ImageCollector(model)
            got = BurstOfdmRx().receive(y)
            for frame in got:
                collector.add(frame.symbols, frame.noise_var)
            sent += len(frames)
            phy_lost += len(frames) - len(got)
            sub_failed += collector.header_failures
        print(f"Es/N0 {snr:g} dB: {sent} frames, PHY header lost {phy_lost}, "
              f"sub-header failed {sub_failed}", flush=True)


if __name__ == "__main__":
    main()
