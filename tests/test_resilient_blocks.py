"""resilient_image_encoder / resilient_image_decoder in real flowgraphs: packets through a
loss (a third dropped, the rest shuffled, one corrupted, one repeated) and the decoder's
timeout; and f32 LLR packets behind QPSK -> pdu_channel -> soft demapper."""

from __future__ import annotations

import random
import time

import numpy as np
import pmt
import pytest
import torch

from genjscc.core.jscc.images import load_image, sample_image_path
from genjscc.core.resilient.model import ResilientConfig, ResilientModel, save_resilient
from genjscc.core.resilient.packets import frequency_table
from gnuradio import blocks, genjscc, gr

pytestmark = pytest.mark.flowgraph

IN = pmt.intern("in")
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> str:
    """A small seeded untrained model: the blocks' plumbing does not depend on the weights."""
    torch.manual_seed(0)
    model = ResilientModel(ResilientConfig(channels=[8, 8, 8], dim=32, depth=1, heads=2))
    path = tmp_path_factory.mktemp("resilient") / "small.safetensors"
    save_resilient(model, torch.from_numpy(frequency_table(np.arange(1000) % 13 + 1)), path)
    return str(path)


def image_pdu(h: int = 96, w: int = 136) -> pmt.pmt_base:
    img = load_image(sample_image_path())[:, :h, :w]
    pixels = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy().reshape(-1)
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("height"), pmt.from_long(h))
    meta = pmt.dict_add(meta, pmt.intern("width"), pmt.from_long(w))
    return pmt.cons(meta, pmt.to_pmt(pixels))


def wait_for(cond, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def meta_long(msg, key: str) -> int:
    return pmt.to_long(pmt.dict_ref(pmt.car(msg), pmt.intern(key), pmt.PMT_NIL))


def test_lossy_shuffled_packets_decode_after_timeout(model_file):
    enc = genjscc.resilient_image_encoder(model=model_file, packet_bytes=64)
    dec = genjscc.resilient_image_decoder(model=model_file, timeout_s=0.3)
    packets, images = blocks.message_debug(), blocks.message_debug()
    tb = gr.top_block()
    tb.msg_connect(enc, "out", packets, "store")
    tb.msg_connect(dec, "out", images, "store")
    tb.start()
    try:
        enc.to_basic_block()._post(IN, image_pdu())
        wait_for(lambda: packets.num_messages() > 0)
        time.sleep(0.2)
        n = packets.num_messages()
        sent = [packets.get_message(i) for i in range(n)]
        assert meta_long(sent[0], "num_segments") == n > 3
        kept = [m for i, m in enumerate(sent) if i % 3]
        random.Random(0).shuffle(kept)
        raw = bytearray(pmt.u8vector_elements(pmt.cdr(kept[0])))
        raw[20] ^= 1
        corrupt = pmt.cons(pmt.make_dict(), pmt.init_u8vector(len(raw), list(raw)))
        for m in [corrupt, *kept, kept[0]]:
            dec.to_basic_block()._post(IN, m)
        wait_for(lambda: images.num_messages() >= 1)  # by the timeout: packets are missing
    finally:
        tb.stop()
        tb.wait()
    out = images.get_message(0)
    h, w = meta_long(out, "height"), meta_long(out, "width")
    assert (h, w) == (96, 136) and pmt.length(pmt.cdr(out)) == h * w * 3
    assert meta_long(out, "missing_segments") == n - len(kept)
    assert dec.num_rejected() == 1 and dec.num_duplicates() == 1 and dec.num_errors() == 1


def test_llr_packets_through_the_pdu_channel(model_file):
    enc = genjscc.resilient_image_encoder(model=model_file, packet_bytes=64)
    mapper = genjscc.qam_mapper("qpsk", "packed")
    channel = genjscc.pdu_channel("awgn", esno_db=20.0, loss_rate=0.2,
                                  mean_burst_length=2.0, seed=1)
    demapper = genjscc.soft_demapper("qpsk", 0.01)
    dec = genjscc.resilient_image_decoder(model=model_file, timeout_s=0.3)
    images = blocks.message_debug()
    tb = gr.top_block()
    tb.msg_connect(enc, "out", mapper, "in")
    tb.msg_connect(mapper, "out", channel, "in")
    tb.msg_connect(channel, "out", demapper, "in")
    tb.msg_connect(demapper, "out", dec, "in")
    tb.msg_connect(dec, "out", images, "store")
    tb.start()
    try:
        enc.to_basic_block()._post(IN, image_pdu())
        wait_for(lambda: images.num_messages() >= 1)
    finally:
        tb.stop()
        tb.wait()
    out = images.get_message(0)
    assert (meta_long(out, "height"), meta_long(out, "width")) == (96, 136)
    assert dec.num_rejected() == 0 and dec.num_images() == 1


def test_bad_pdus_are_counted_not_raised(model_file):
    enc = genjscc.resilient_image_encoder(model=model_file)
    dec = genjscc.resilient_image_decoder(model=model_file, timeout_s=0)
    tb = gr.top_block()
    sink = blocks.message_debug()
    tb.msg_connect(dec, "out", sink, "store")
    tb.msg_connect(enc, "out", sink, "store")
    tb.start()
    try:
        for msg in (pmt.intern("no-such-file.png"),
                    pmt.cons(pmt.make_dict(), pmt.init_u8vector(3, [1, 2, 3]))):
            enc.to_basic_block()._post(IN, msg)
        for msg in (pmt.PMT_NIL, pmt.cons(pmt.make_dict(), pmt.init_c32vector(2, [1j, 1])),
                    pmt.cons(pmt.make_dict(), pmt.init_f32vector(3, [1.0, 2.0, 3.0])),
                    pmt.cons(pmt.make_dict(), pmt.init_u8vector(64, [0] * 64))):
            dec.to_basic_block()._post(IN, msg)
        wait_for(lambda: enc.num_errors() == 2 and dec.num_errors() == 4, 10)
    finally:
        tb.stop()
        tb.wait()
    assert enc.num_errors() == 2 and dec.num_errors() == 4 and sink.num_messages() == 0
    with pytest.raises(ValueError):
        genjscc.resilient_image_encoder(model=model_file, packet_bytes=8)
