"""OFDM loopbacks in real flowgraphs: gr-digital's ofdm_tx/rx, and our QAM chain.

Every run pads the tail with a few extra packets (the receiver holds the last frame until more
samples arrive), counts what it needs and stops the graph itself, with a bounded wait.
"""

from __future__ import annotations

import time

import numpy as np
import pmt
import pytest
from gnuradio.digital import ofdm_txrx

from genjscc.blocks.ofdm import MAX_PAYLOAD_SYMBOLS, make_sync_words
from gnuradio import blocks, channels, digital, genjscc, gr, pdu

pytestmark = pytest.mark.flowgraph

TIMEOUT_S = 30.0
TAIL_PACKETS = 4
NOISE_VOLTAGE = 0.05  # per-carrier SNR after the FFT: 64 / 0.05**2, about 44 dB


def wait_for(predicate, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_gr_digital_ofdm_loopback_bytes():
    """Reference: bytes -> digital.ofdm_tx -> channel_model -> digital.ofdm_rx -> bytes."""
    num, size = 200, 96  # (96 + 4) * 8 is a multiple of 2 bits (QPSK payload)
    rng = np.random.default_rng(0)
    packets = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(num + TAIL_PACKETS)]
    key = "packet_len"
    tb = gr.top_block()
    src = blocks.vector_source_b(np.concatenate(packets).tolist(), False)
    to_tagged = blocks.stream_to_tagged_stream(gr.sizeof_char, 1, size, key)
    # rolloff > 0 shapes the frame edges; back-to-back frames without it lose about 6 %.
    tx = digital.ofdm_tx(packet_length_tag_key=key, bps_payload=2, rolloff=2)
    chan = channels.channel_model(noise_voltage=NOISE_VOLTAGE, block_tags=True)
    rx = digital.ofdm_rx(packet_length_tag_key=key, bps_payload=2)
    to_pdu = pdu.tagged_stream_to_pdu(gr.types.byte_t, key)
    sink = blocks.message_debug()
    tb.connect(src, to_tagged, tx, chan, rx, to_pdu)
    tb.msg_connect(to_pdu, "pdus", sink, "store")
    tb.start()
    try:
        wait_for(lambda: sink.num_messages() >= num)
    finally:
        tb.stop()
        tb.wait()
    sent = {bytes(p) for p in packets[:num]}
    got = [bytes(pmt.to_python(pmt.cdr(sink.get_message(i)))) for i in range(sink.num_messages())]
    correct = {g for g in got if g in sent}
    assert len(correct) >= 0.99 * num


def run_qam_ofdm(modulation, payloads, expect, noise_voltage=NOISE_VOLTAGE, post_to="mapper"):
    """payloads (u8 arrays or PDUs) -> [qam_mapper] -> ofdm_qam_tx -> channel_model ->
    ofdm_qam_rx -> soft_demapper, until ``expect`` LLR PDUs arrived (bounded); returns
    (tx, rx, demapper, symbol PDUs, LLR PDUs)."""
    tb = gr.top_block()
    mapper = genjscc.qam_mapper(modulation)
    tx = genjscc.ofdm_qam_tx(modulation)
    chan = channels.channel_model(noise_voltage=noise_voltage, block_tags=True, noise_seed=1)
    rx = genjscc.ofdm_qam_rx(modulation)
    demapper = genjscc.soft_demapper(modulation, noise_var=1.0)
    sym_sink, llr_sink = blocks.message_debug(), blocks.message_debug()
    tb.msg_connect(mapper, "out", tx, "in")
    tb.connect(tx, chan, rx)
    tb.msg_connect(rx, "out", demapper, "in")
    tb.msg_connect(rx, "out", sym_sink, "store")
    tb.msg_connect(demapper, "out", llr_sink, "store")
    first = mapper if post_to == "mapper" else tx.frontend
    tb.start()
    try:
        for p in payloads:
            msg = p if isinstance(p, pmt.pmt_base) else pmt.cons(pmt.make_dict(), pmt.to_pmt(p))
            first.to_basic_block()._post(pmt.intern("in"), msg)
        wait_for(lambda: llr_sink.num_messages() >= expect)
    finally:
        tb.stop()
        tb.wait()
    syms = [sym_sink.get_message(i) for i in range(sym_sink.num_messages())]
    llrs = [llr_sink.get_message(i) for i in range(llr_sink.num_messages())]
    return tx, rx, demapper, syms, llrs


def packet_num(msg) -> int:
    return pmt.to_long(pmt.dict_ref(pmt.car(msg), pmt.intern("packet_num"), pmt.from_long(-1)))


@pytest.mark.parametrize("modulation", ["16qam", "64qam"])
def test_qam_ofdm_loopback_llrs_match_sent_bits(modulation):
    num, size = 100, 96  # 96 bytes: 192 16-QAM / 128 64-QAM symbols
    rng = np.random.default_rng(1)
    payloads = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(num + TAIL_PACKETS)]
    _, rx, demapper, syms, llrs = run_qam_ofdm(modulation, payloads, expect=num)
    correct = 0
    for msg in llrs:
        k = packet_num(msg)
        llr = np.asarray(pmt.to_python(pmt.cdr(msg)))
        if 0 <= k < num and llr.size == size * 8:
            correct += np.array_equal(np.packbits((llr < 0).astype(np.uint8)), payloads[k])
    assert correct >= 0.99 * num
    assert rx.num_errors() == 0 and demapper.num_errors() == 0
    # The receiver's decision-directed N0: the AWGN part is noise_voltage^2 / fft_len; the
    # one-symbol channel estimate and the DFE add about as much again.
    n0 = NOISE_VOLTAGE**2 / 64
    nvs = [pmt.to_double(pmt.dict_ref(pmt.car(m), pmt.intern("noise_var"), pmt.PMT_NIL))
           for m in syms]
    assert n0 < np.median(nvs) < 6 * n0
    meta = pmt.car(syms[0])
    assert pmt.symbol_to_string(pmt.dict_ref(meta, pmt.intern("modulation"), pmt.PMT_NIL)) == (
        modulation
    )


def test_ofdm_tx_takes_bytes_and_rejects_malformed_pdus():
    """u8 PDUs are mapped by the transmitter; bad PDUs are counted and the link keeps going."""
    rng = np.random.default_rng(2)
    good = [rng.integers(0, 256, 48, dtype=np.uint8) for _ in range(3 + TAIL_PACKETS)]
    bad = [
        pmt.intern("not a pdu"),
        pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(10, np.float32))),
        pmt.cons(pmt.make_dict(), pmt.make_c32vector(0, 0)),
        pmt.cons(pmt.make_dict(), pmt.make_c32vector(MAX_PAYLOAD_SYMBOLS + 1, 1)),
        pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(1, np.uint8))),  # 8 bits: not 6-bit symbols
    ]
    tx, _, _, _, llrs = run_qam_ofdm("64qam", [*bad, *good], expect=3, post_to="tx")
    assert tx.num_errors() == len(bad)
    assert tx.num_processed() == len(good)
    decoded = {packet_num(m): np.packbits((pmt.to_python(pmt.cdr(m)) < 0).astype(np.uint8))
               for m in llrs}
    for k in range(3):
        assert np.array_equal(decoded[k], good[k])


def test_ofdm_layout_validation():
    with pytest.raises(ValueError):
        genjscc.ofdm_qam_tx("16qam", rolloff=16)
    with pytest.raises(ValueError):
        genjscc.ofdm_qam_rx("16qam", sync_word1=[0.0] * 32)
    with pytest.raises(ValueError):
        genjscc.ofdm_qam_rx("32qam")
    with pytest.raises(ValueError):  # too few carriers for the 32-bit header
        genjscc.ofdm_qam_tx("16qam", occupied_carriers=(tuple(range(1, 20)),))


def test_default_sync_words_equal_gr_digital_and_leave_numpy_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    sw1, sw2 = make_sync_words()
    assert np.array_equal(np.random.get_state()[1], before)
    occ, pil = ofdm_txrx._def_occupied_carriers, ofdm_txrx._def_pilot_carriers
    np.testing.assert_allclose(sw1, ofdm_txrx._make_sync_word1(64, occ, pil))
    np.testing.assert_allclose(sw2, ofdm_txrx._make_sync_word2(64, occ, pil))
