"""JSCC blocks in real flowgraphs: encoder -> decoder over PDUs, malformed input, and the
GNU Radio OFDM loopback (ofdm_qam_tx -> channel_model -> ofdm_jscc_rx) against plain AWGN.

PDUs are posted straight into the first block; every test stops its graph itself.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pmt
import pytest
import torch

from flowgraph_helpers import meta_ref
from genjscc.core.jscc import JSCCChannel, load_model
from genjscc.core.jscc.images import load_image, psnr_db, sample_images
from gnuradio import blocks, channels, genjscc, gr

pytestmark = pytest.mark.flowgraph

IN = pmt.intern("in")
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def image():
    """A held-out photograph cropped to 96x128 (3 OFDM frames of 2048 symbols)."""
    return load_image(sample_images()[0])[:, :96, :128]


def raw_pdu(img: torch.Tensor, extra: dict | None = None) -> pmt.pmt_base:
    h, w = img.shape[1:]
    pixels = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy().reshape(-1)
    meta = pmt.make_dict()
    for key, value in {"height": h, "width": w, **(extra or {})}.items():
        v = pmt.from_double(value) if isinstance(value, float) else pmt.from_long(value)
        meta = pmt.dict_add(meta, pmt.intern(key), v)
    return pmt.cons(meta, pmt.to_pmt(pixels))


def to_image(msg: pmt.pmt_base) -> torch.Tensor:
    meta = pmt.car(msg)
    h = pmt.to_long(pmt.dict_ref(meta, pmt.intern("height"), pmt.PMT_NIL))
    w = pmt.to_long(pmt.dict_ref(meta, pmt.intern("width"), pmt.PMT_NIL))
    arr = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), dtype=np.uint8).reshape(h, w, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def wait_for(cond, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_encoder_to_decoder_over_pdus(image):
    enc = genjscc.jscc_image_encoder(snr_db=10.0, symbols_per_frame=1000)
    dec = genjscc.jscc_image_decoder()
    sym_sink, img_sink = blocks.message_debug(), blocks.message_debug()
    tb = gr.top_block()
    tb.msg_connect(enc, "out", dec, "in")
    tb.msg_connect(enc, "out", sym_sink, "store")
    tb.msg_connect(dec, "out", img_sink, "store")
    tb.start()
    try:
        enc.to_basic_block()._post(IN, raw_pdu(image, {"snr_db": 20.0}))
        wait_for(lambda: img_sink.num_messages() >= 1)
    finally:
        tb.stop()
        tb.wait()
    k = 3 * 96 * 128 // 6
    assert sym_sink.num_messages() == math.ceil(k / 1000)
    first = sym_sink.get_message(0)
    assert pmt.length(pmt.cdr(first)) == 1000
    assert pmt.to_long(meta_ref(first, "num_segments")) == math.ceil(k / 1000)
    out = img_sink.get_message(0)
    assert pmt.to_long(meta_ref(out, "missing_segments")) == 0
    rec = to_image(out)
    # noiseless, decoded with the encoder's snr_db: better than the 20 dB channel would give
    assert rec.shape == image.shape and float(psnr_db(image, rec)) > 20
    assert enc.num_errors() == 0 and dec.num_errors() == 0


def test_malformed_input_is_counted_and_the_graph_keeps_running(image):
    enc = genjscc.jscc_image_encoder(snr_db=10.0)
    dec = genjscc.jscc_image_decoder(height=96, width=128)
    img_sink = blocks.message_debug()
    tb = gr.top_block()
    tb.msg_connect(enc, "out", dec, "in")
    tb.msg_connect(dec, "out", img_sink, "store")
    tb.start()
    good = raw_pdu(image)
    k = 3 * 96 * 128 // 6
    symbols = np.ones(k, np.complex64)
    try:
        bad_encoder = [
            pmt.cons(pmt.make_dict(), pmt.to_pmt(np.zeros(10, np.float32))),  # wrong dtype
            pmt.cons(pmt.car(good), pmt.to_pmt(np.zeros(1000, np.uint8))),  # truncated
            pmt.cons(pmt.make_dict(), pmt.to_pmt(np.zeros(500, np.uint8))),  # not an image
            pmt.intern("no_such_file.png"),
            pmt.from_long(3),  # not a PDU
        ]
        for msg in bad_encoder:
            enc.to_basic_block()._post(IN, msg)
        no_snr = pmt.cons(pmt.make_dict(), pmt.to_pmt(symbols))
        bad_decoder = [
            no_snr,  # missing SNR
            pmt.cons(pmt.dict_add(pmt.make_dict(), pmt.intern("snr_db"), pmt.from_double(5.0)),
                     pmt.to_pmt(symbols[:100])),  # wrong length
            pmt.cons(pmt.dict_add(pmt.make_dict(), pmt.intern("snr_db"), pmt.from_double(5.0)),
                     pmt.to_pmt(np.ones(k, np.uint8))),  # wrong dtype
            pmt.cons(pmt.dict_add(pmt.make_dict(), pmt.intern("snr_db"), pmt.intern("x")),
                     pmt.to_pmt(symbols)),  # SNR of the wrong type
        ]
        for msg in bad_decoder:
            dec.to_basic_block()._post(IN, msg)
        wait_for(lambda: enc.num_errors() >= len(bad_encoder)
                 and dec.num_errors() >= len(bad_decoder), timeout=10)
        enc.to_basic_block()._post(IN, good)  # still running: a good image goes through
        wait_for(lambda: img_sink.num_messages() >= 1)
    finally:
        tb.stop()
        tb.wait()
    assert enc.num_errors() == len(bad_encoder)
    assert dec.num_errors() == len(bad_decoder)
    assert img_sink.num_messages() == 1


def test_decoder_missing_snr_error_is_clear():
    dec = genjscc.jscc_image_decoder(height=64, width=64)
    with pytest.raises(ValueError, match="missing SNR"):
        dec.process(pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(2048, np.complex64))))
    dec.set_snr_db(7.0)  # the fallback makes the same PDU decodable
    assert dec._snr(pmt.make_dict()) == 7.0


def test_ofdm_loopback_matches_awgn_within_1db(image):
    """Same model, same SNR (15 dB: the Schmidl & Cox sync needs about 12 dB or more)."""
    snr_db, spf, n_images = 15.0, 2048, 4
    h, w = image.shape[1:]
    enc = genjscc.jscc_image_encoder(snr_db=snr_db, symbols_per_frame=spf)
    tx = genjscc.ofdm_qam_tx()
    chan = channels.channel_model(noise_voltage=math.sqrt(64 / 10 ** (snr_db / 10)),
                                  frequency_offset=0.0, epsilon=1.0, taps=[1.0], noise_seed=7,
                                  block_tags=True)
    rx = genjscc.ofdm_jscc_rx()
    dec = genjscc.jscc_image_decoder(height=h, width=w, symbols_per_frame=spf)
    sink = blocks.message_debug()
    tb = gr.top_block()
    tb.msg_connect(enc, "out", tx, "in")
    tb.connect(tx, chan, rx)
    tb.msg_connect(rx, "out", dec, "in")
    tb.msg_connect(dec, "out", sink, "store")
    tb.start()
    try:
        for _ in range(n_images + 1):  # one more: its frames push the last image's out
            enc.to_basic_block()._post(IN, raw_pdu(image))
        wait_for(lambda: sink.num_messages() >= n_images)
    finally:
        tb.stop()
        tb.wait()
    assert sink.num_messages() >= n_images - 1
    msgs = [sink.get_message(i) for i in range(sink.num_messages())][:n_images]
    complete = [m for m in msgs if pmt.to_long(meta_ref(m, "missing_segments")) == 0]
    assert len(complete) >= n_images - 1  # frame losses of the sync are rare at 15 dB
    for m in complete:  # the receiver's SNR estimate is close to the channel's
        assert abs(pmt.to_double(meta_ref(m, "snr_db")) - snr_db) < 2.0
    ofdm = np.mean([float(psnr_db(image, to_image(m))) for m in complete])

    model = load_model("jscc-r1_6")
    gen = torch.Generator().manual_seed(0)
    awgn = []
    with torch.no_grad():
        for _ in range(4):
            y, s = JSCCChannel("awgn")(model.encode(image[None], snr_db), snr_db, gen)
            awgn.append(float(psnr_db(image, model.decode(y, s, h, w))))
    assert abs(ofdm - np.mean(awgn)) <= 1.0, (ofdm, awgn)


def test_ofdm_jscc_rx_checks_parameters():
    with pytest.raises(ValueError):
        genjscc.ofdm_jscc_rx(smooth_len=1)


def test_smooth_channel_taps_estimates_noise():
    from genjscc.core.channel.ofdm import smooth_channel_taps

    rng = np.random.default_rng(0)
    active = np.array([k for k in range(6, 59) if k != 32])
    n0 = 0.05
    true = np.zeros(64, np.complex64)
    true[active] = 0.8 * np.exp(-1j * 0.1 * active)  # flat gain with a delay slope
    noisy = true.copy()
    noisy[active] += np.sqrt(n0 / 2) * (rng.standard_normal(active.size)
                                        + 1j * rng.standard_normal(active.size))
    smooth, snr_db = smooth_channel_taps(noisy, active, 9)
    err_raw = np.mean(np.abs(noisy[active] - true[active]) ** 2)
    err_smooth = np.mean(np.abs(smooth[active] - true[active]) ** 2)
    assert err_smooth < err_raw / 3
    expected = -10 * math.log10(n0 / 0.64)
    assert abs(snr_db - expected) < 1.5


def test_spreading_is_unitary_and_spreads_energy():
    """despread(spread(x)) == x, energy kept, and one strong symbol lands on every position."""
    from genjscc.core.jscc.spreading import despread, spread

    rng = np.random.default_rng(3)
    x = (rng.standard_normal(6144) + 1j * rng.standard_normal(6144)).astype(np.complex64)
    s = spread(x)
    np.testing.assert_allclose(despread(s), x, atol=1e-5)
    assert abs(np.vdot(s, s).real - np.vdot(x, x).real) < 1e-2 * np.vdot(x, x).real
    impulse = np.zeros(6144, np.complex64)
    impulse[0] = 1.0
    np.testing.assert_allclose(np.abs(spread(impulse)), np.full(6144, 6144 ** -0.5), rtol=1e-4)


def test_segments_and_frame_counter():
    from genjscc.core.jscc.spreading import FrameCounter, segment

    x = np.arange(1, 11).astype(np.complex64)
    segs = segment(x, 4)
    assert segs.shape == (3, 4) and np.array_equal(segs.reshape(-1)[:10], x)
    assert not segs.reshape(-1)[10:].any()
    assert segment(x, 0).shape == (1, 10)
    counter = FrameCounter(12)
    assert [counter.unwrap(c) for c in (4094, 4095, 0, 1, 4095, 2)] == \
        [4094, 4095, 4096, 4097, 8191, 8194]
