"""Deep JSCC images over the burst PHY: sub-header, grouping, PSNR against plain AWGN."""

from __future__ import annotations

import numpy as np
import pytest

from genjscc.core.channel.emulator import ChannelEmulator
from genjscc.core.jscc import load_model, model_name
from genjscc.core.jscc.images import load_image, psnr_db, sample_image_path, to_uint8
from genjscc.core.link.image_frames import ImageCollector, despread, image_frames, spread
from genjscc.core.phy.burst_ofdm import BurstOfdmConfig, BurstOfdmRx, BurstOfdmTx, FrameHeader
from jscc_helpers import as_float, awgn_psnr_db


@pytest.fixture(scope="module")
def model():
    return load_model(model_name("1/6"))


def test_image_at_0_db_within_1_5_db_of_plain_awgn(model):
    """A 192x128 crop (4 frames) at Es/N0 = 0 dB with CFO 0.3 and 10 ppm through the burst
    PHY decodes within 1.5 dB PSNR of the same model over plain AWGN at 0 dB."""
    pixels = to_uint8(load_image(sample_image_path()))[:128, :192]
    image_id, frames = image_frames(pixels, model, 0.0)
    tx, cfg = BurstOfdmTx(), BurstOfdmConfig()
    parts = [np.zeros(300, np.complex64)]
    for i, f in enumerate(frames):
        parts += [tx.modulate(f, FrameHeader(cfg.symbols_for(f.size), "qpsk", True, i)),
                  np.zeros(300, np.complex64)]
    parts.append(np.zeros(cfg.frame_len(80), np.complex64))
    y = ChannelEmulator(es_n0_db=0.0, cfo=0.3, sro_ppm=10.0, seed=1)(np.concatenate(parts))
    collector = ImageCollector(model)
    done = [collector.add(f.symbols, f.noise_var) for f in BurstOfdmRx().receive(y)]
    assert done[-1] == image_id and collector.header_failures == 0
    out, snr, missing = collector.decode(image_id)
    assert missing == 0 and abs(snr) < 1.0
    ref = as_float(pixels)
    gap = awgn_psnr_db(model, ref, 0.0) - float(psnr_db(ref, as_float(out)))
    assert gap < 1.5


def test_missing_segment_and_foreign_frames(model):
    """A lost frame leaves a decodable image with one segment missing; frames of another
    image never mix in; a frame too short for the sub-header is counted, not a crash."""
    pixels = to_uint8(load_image(sample_image_path()))[:96, :96]
    other = np.ascontiguousarray(pixels[::-1])
    id_a, frames_a = image_frames(pixels, model, 10.0, symbols_per_frame=1000)
    id_b, frames_b = image_frames(other, model, 10.0, symbols_per_frame=1000)
    assert id_a != id_b and len(frames_a) >= 2
    collector = ImageCollector(model, symbols_per_frame=1000)
    nv = np.full(frames_a[0].size, 0.01, np.float32)
    for f in frames_a[1:]:
        collector.add(f, nv)
    collector.add(frames_b[0], nv)
    assert collector.add(np.zeros(10, np.complex64), nv[:10]) is None
    assert collector.header_failures == 1
    out, _, missing = collector.decode(id_a)
    assert out.shape == (96, 96, 3) and missing == 1
    assert len(collector.pending[id_b].segments) == 1


def test_spreading_is_unitary_and_inverted():
    x = (np.random.default_rng(0).standard_normal((500, 2)) @ [1, 1j]).astype(np.complex64)
    y = spread(x)
    assert abs(np.linalg.norm(y) - np.linalg.norm(x)) < 1e-3
    np.testing.assert_allclose(despread(y), x, atol=1e-5)
