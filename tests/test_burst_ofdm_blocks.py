"""burst_ofdm_tx -> gr-channels channel_model -> burst_ofdm_rx -> soft_demapper in a real
GNU Radio flowgraph; TX burst tags; malformed PDUs."""

from __future__ import annotations

import math
import time

import numpy as np
import pmt
import pytest

from gnuradio import blocks, channels, genjscc, gr

pytestmark = pytest.mark.flowgraph

TIMEOUT_S = 40.0


def wait_for(predicate, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def byte_pdu(data: np.ndarray) -> pmt.pmt_base:
    return pmt.cons(pmt.make_dict(), pmt.init_u8vector(data.size, data.tolist()))


def test_bytes_over_gr_channels_with_cfo_sro_and_taps():
    """30 packets of 288 bytes at Es/N0 = 25 dB, CFO 0.5 subcarrier, 20 ppm and 3 taps in
    gr-channels' channel_model: every frame is found, its header and counter are right, and
    the hard decisions of soft_demapper's LLRs give back the bytes (uncoded BER < 1e-3;
    the deepest notch of these taps is 17 dB down)."""
    num, size = 30, 288  # 288 bytes = 1152 QPSK symbols = 24 OFDM symbols
    rng = np.random.default_rng(0)
    packets = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(num)]
    es_n0_db = 25.0
    tb = gr.top_block()
    tx = genjscc.burst_ofdm_tx(modulation="qpsk", continuous=True, gap=500)
    chan = channels.channel_model(
        noise_voltage=math.sqrt(10 ** (-es_n0_db / 10)), frequency_offset=0.5 / 64,
        epsilon=1 + 20e-6, taps=[1.0, 0.0, 0.5j, 0.0, 0.0, -0.3 + 0.2j], noise_seed=5,
        block_tags=False)
    rx = genjscc.burst_ofdm_rx(chunk=8192)
    demap = genjscc.soft_demapper(modulation="qpsk")
    sink = blocks.message_debug()
    tb.connect(tx, chan, rx)
    tb.msg_connect(rx, "out", demap, "in")
    tb.msg_connect(demap, "out", sink, "store")
    tb.start()
    # Frames after some zeros: channel_model's resampler eats the first samples of a stream.
    time.sleep(0.05)
    for p in packets:
        tx.to_basic_block()._post(pmt.intern("in"), byte_pdu(p))
    try:
        wait_for(lambda: sink.num_messages() >= num)
    finally:
        tb.stop()
        tb.wait()
    assert sink.num_messages() == num, rx.stats()
    errors = 0
    for i in range(num):
        msg = sink.get_message(i)
        meta = pmt.to_python(pmt.car(msg))
        llr = np.asarray(pmt.to_python(pmt.cdr(msg)), dtype=np.float32)
        assert meta["frame_counter"] == i and meta["modulation"] == "qpsk"
        assert abs(meta["cfo"] - 0.5) < 0.05
        assert 21.0 < meta["snr_db"] < 27.0
        bits = (llr[: size * 8] < 0).astype(np.uint8)
        errors += int(np.count_nonzero(bits != np.unpackbits(packets[i])))
    assert errors / (num * size * 8) < 1e-3
    assert tx.num_errors() == 0 and rx.stats()["header_failures"] == 0


def test_burst_mode_tags_and_bad_pdus():
    """Without zero fill the TX writes only frames, each between a tx_sob and a tx_eob tag;
    a PDU of floats and one of 0 bytes are dropped and counted."""
    tb = gr.top_block()
    tx = genjscc.burst_ofdm_tx(modulation="16qam", continuous=False, burst_tags=True)
    head = blocks.head(gr.sizeof_gr_complex, 10**9)
    sink = blocks.vector_sink_c()
    tb.connect(tx, head, sink)
    port = pmt.intern("in")
    tx.to_basic_block()._post(port, pmt.cons(pmt.make_dict(), pmt.init_f32vector(3, [1, 2, 3])))
    tx.to_basic_block()._post(port, byte_pdu(np.zeros(0, np.uint8)))
    for n in (24, 240):
        tx.to_basic_block()._post(port, byte_pdu(np.arange(n, dtype=np.uint8)))
    tb.start()
    try:
        wait_for(lambda: tx.num_frames() >= 2 and tx.num_errors() >= 2)
        time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    assert tx.num_errors() == 2 and tx.num_frames() == 2
    tags = sorted((t.offset, pmt.symbol_to_string(t.key)) for t in sink.tags())
    n = len(sink.data())
    assert [k for _, k in tags] == ["tx_sob", "tx_eob", "tx_sob", "tx_eob"]
    assert tags[0][0] == 0 and tags[-1][0] == n - 1 and tags[2][0] == tags[1][0] + 1


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.complex64])
def test_fast_pmt_vectors_equal_pmt_to_pmt(dtype):
    """The PDU vectors built from bytes (blocks._pdu.uniform_vector) are PMT's own, item for
    item, NaN, inf, -0 and empty included; vector_array reads them back."""
    from genjscc.blocks._pdu import uniform_vector, vector_array

    rng = np.random.default_rng(1)
    for size in (0, 1, 5, 1000):
        data = rng.standard_normal((size, 2)) @ np.array([1, 1j]) * 50
        data = data.astype(dtype) if dtype == np.complex64 else np.abs(data).astype(dtype)
        if size >= 5 and dtype != np.uint8:
            data[1:4] = [np.nan, np.inf, -0.0]
        vec = uniform_vector(data)
        assert pmt.serialize_str(vec) == pmt.serialize_str(pmt.to_pmt(data))
        back = vector_array(vec, dtype)
        assert back.dtype == dtype and np.array_equal(back, data, equal_nan=True)
