"""ldpc_encoder / ldpc_decoder in real flowgraphs: round trips, noisy links, OFDM, bad input.

PDUs are posted straight into the first block and collected with blocks.message_debug; every
graph is stopped by the test after a bounded wait.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pmt
import pytest
import torch

from flowgraph_helpers import IN, data_of, f32_pdu, meta_ref, run_chain, u8_pdu
from genjscc.core.fec.codes import get_code
from genjscc.core.fec.crc import CRC
from genjscc.demo.link import noise_voltage_for_esno, run_coded_point
from gnuradio import blocks, channels, genjscc, gr

pytestmark = pytest.mark.flowgraph

TIMEOUT_S = 30.0
CODE_5G = "5gnr:bg2:k=512:e=1024"
SHORT = "LDPC_N49_K24"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """BP runs many small ops; on a loaded 2-core machine OpenMP threads mostly wait for each
    other (up to 100x slower, measured). The blocks' threads start inside this fixture and
    pick up its setting; the previous value is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def payloads(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]


def assert_decoded(got, sent):
    assert len(got) == len(sent)
    for msg, p in zip(got, sent, strict=True):
        assert data_of(msg).dtype == np.uint8
        assert np.array_equal(data_of(msg), p)
        assert pmt.to_bool(meta_ref(msg, "crc_ok")) is True
        assert pmt.to_bool(meta_ref(msg, "syndrome_ok")) is True


# --------------------------------------------------------------------------- noiseless


@pytest.mark.parametrize(("code", "crc", "sizes"), [
    (CODE_5G, "24A", [1, 61, 100, 125, 300]),   # 1 to 5 codewords, with and without padding
    (SHORT, "16", [1, 8, 13]),                   # k = 24: 1 to 6 codewords
    ("POLAR_N64_K32", "", [4, 9]),               # no CRC
])
def test_noiseless_roundtrip(code, crc, sizes):
    sent = payloads(sizes)
    enc = genjscc.ldpc_encoder(code, crc=crc)
    mapper = genjscc.qam_mapper("bpsk", input_format="unpacked")
    demapper = genjscc.soft_demapper("bpsk", noise_var=0.5)
    dec = genjscc.ldpc_decoder(code, crc=crc)
    got = run_chain([enc, mapper, demapper, dec], [u8_pdu(p) for p in sent], len(sent))
    assert len(got) == len(sent)
    k = enc.code.k
    crc_len = CRC(crc).length if crc else 0
    for msg, p in zip(got, sent, strict=True):
        assert np.array_equal(data_of(msg), p)
        assert pmt.to_long(meta_ref(msg, "num_info_bits")) == 8 * p.size
        assert pmt.to_long(meta_ref(msg, "codewords")) == math.ceil((8 * p.size + crc_len) / k)
        assert pmt.to_long(meta_ref(msg, "num_bits")) == 8 * p.size
        assert pmt.to_bool(meta_ref(msg, "syndrome_ok"))
        assert pmt.to_long(meta_ref(msg, "iterations")) >= 0
        if crc:
            assert pmt.to_bool(meta_ref(msg, "crc_ok"))
        else:
            assert not pmt.dict_has_key(pmt.car(msg), pmt.intern("crc_ok"))
    assert enc.num_errors() == dec.num_errors() == dec.num_crc_fail() == 0
    assert dec.num_processed() == len(sent)


def test_encoder_output_follows_the_framing_rule():
    """payload + zero padding, CRC over both at the end; C blocks of e bits, one bit per byte."""
    payload = payloads([100])[0]  # 800 bits + 24 = 824 -> 2 codewords of 512, 200 padding bits
    enc = genjscc.ldpc_encoder(CODE_5G, crc="24A")
    (msg,) = run_chain([enc], [u8_pdu(payload)], 1)
    bits = data_of(msg)
    assert bits.dtype == np.uint8 and bits.size == 2 * 1024 and set(np.unique(bits)) <= {0, 1}
    info = np.zeros(1024, np.uint8)
    info[:800] = np.unpackbits(payload)
    info_t = torch.from_numpy(info)
    info_t[-24:] = CRC("24A").compute(info_t[:-24])
    expected = get_code(CODE_5G).encode(info_t.reshape(2, 512)).reshape(-1).numpy()
    assert np.array_equal(bits, expected)
    assert pmt.to_long(meta_ref(msg, "num_info_bits")) == 800
    assert pmt.to_long(meta_ref(msg, "codewords")) == 2


def test_unpacked_formats_and_short_code_codewords():
    bits_in = np.random.default_rng(3).integers(0, 2, 37, dtype=np.uint8)  # not whole bytes
    enc = genjscc.ldpc_encoder(SHORT, crc="6", input_format="unpacked")
    dec = genjscc.ldpc_decoder(SHORT, crc="6", output_format="unpacked")
    tap = blocks.message_debug()
    llr_of = genjscc.soft_demapper("bpsk", noise_var=1.0)
    mapper = genjscc.qam_mapper("bpsk", input_format="unpacked")
    (msg,) = run_chain([enc, mapper, llr_of, dec], [u8_pdu(bits_in)], 1, taps=[(enc, tap)])
    assert np.array_equal(data_of(msg), bits_in)
    coded = data_of(tap.get_message(0)).reshape(-1, 49)  # (37 + 6) bits -> 2 codewords
    assert coded.shape == (2, 49)
    assert not get_code(SHORT).syndrome(torch.from_numpy(coded)).any()


def test_decoder_without_metadata_keeps_the_padding():
    """OFDM drops metadata: the CRC still checks, the payload comes with its zero padding."""
    payload = payloads([100])[0]
    enc = genjscc.ldpc_encoder(CODE_5G)
    (coded,) = run_chain([enc], [u8_pdu(payload)], 1)
    llr = 8.0 * (1.0 - 2.0 * data_of(coded).astype(np.float32))
    dec = genjscc.ldpc_decoder(CODE_5G)
    (msg,) = run_chain([dec], [f32_pdu(llr)], 1)
    out = data_of(msg)
    assert out.size == (2 * 512 - 24) // 8
    assert np.array_equal(out[:100], payload) and not out[100:].any()
    assert pmt.to_bool(meta_ref(msg, "crc_ok"))


@pytest.mark.parametrize("decoder", ["bp-layered", "normalized-minsum", "ldpc-cpp", "none"])
def test_decoder_names(decoder):
    sent = payloads([8, 8], seed=4)
    enc = genjscc.ldpc_encoder(SHORT, crc="16")
    mapper = genjscc.qam_mapper("bpsk", input_format="unpacked")
    demapper = genjscc.soft_demapper("bpsk", noise_var=0.5)
    dec = genjscc.ldpc_decoder(SHORT, decoder=decoder, num_iters=20, crc="16")
    got = run_chain([enc, mapper, demapper, dec], [u8_pdu(p) for p in sent], len(sent))
    assert_decoded(got, sent)
    iters = pmt.to_long(meta_ref(got[0], "iterations"))
    assert iters == -1 if decoder in ("ldpc-cpp", "none") else iters >= 0


# --------------------------------------------------------------------------- noisy links


def test_pdu_channel_bp_corrects_every_channel_error():
    """QPSK at Es/N0 = 3 dB: ~8 % raw bit errors, rate-1/2 5G LDPC decodes every block."""
    sent = payloads([125] * 15, seed=5)  # 2 codewords each
    enc = genjscc.ldpc_encoder(CODE_5G)
    mapper = genjscc.qam_mapper("qpsk", input_format="unpacked")
    channel = genjscc.pdu_channel("awgn", esno_db=3.0, seed=7)
    demapper = genjscc.soft_demapper("qpsk")
    dec = genjscc.ldpc_decoder(CODE_5G)
    coded_tap, llr_tap = blocks.message_debug(), blocks.message_debug()
    got = run_chain([enc, mapper, channel, demapper, dec], [u8_pdu(p) for p in sent], len(sent),
                    taps=[(enc, coded_tap), (demapper, llr_tap)])
    assert_decoded(got, sent)
    raw_errors = sum(
        int(np.count_nonzero((data_of(llr_tap.get_message(i)) < 0)
                             != data_of(coded_tap.get_message(i))))
        for i in range(len(sent)))
    assert raw_errors > 0.03 * len(sent) * 2048
    assert dec.num_crc_fail() == 0 and dec.num_codewords() == 2 * len(sent)


def test_pdu_channel_short_code_corrects_errors():
    """BPSK, LDPC(49,24) + CRC-16 at Eb/N0 = 7 dB: raw errors, none after BP."""
    sent = payloads([8] * 20, seed=6)
    esno_db = 7.0 + 10 * math.log10(24 / 49)
    enc = genjscc.ldpc_encoder(SHORT, crc="16")
    mapper = genjscc.qam_mapper("bpsk", input_format="unpacked")
    channel = genjscc.pdu_channel("awgn", esno_db=esno_db, seed=8)
    demapper = genjscc.soft_demapper("bpsk")
    dec = genjscc.ldpc_decoder(SHORT, crc="16")
    coded_tap, llr_tap = blocks.message_debug(), blocks.message_debug()
    got = run_chain([enc, mapper, channel, demapper, dec], [u8_pdu(p) for p in sent], len(sent),
                    taps=[(enc, coded_tap), (demapper, llr_tap)])
    assert_decoded(got, sent)
    raw_errors = sum(
        int(np.count_nonzero((data_of(llr_tap.get_message(i)) < 0)
                             != data_of(coded_tap.get_message(i))))
        for i in range(len(sent)))
    assert raw_errors > 0


def test_low_snr_reports_crc_failure():
    sent = payloads([61] * 4, seed=9)
    enc = genjscc.ldpc_encoder(CODE_5G)
    mapper = genjscc.qam_mapper("qpsk", input_format="unpacked")
    channel = genjscc.pdu_channel("awgn", esno_db=-4.0, seed=10)
    demapper = genjscc.soft_demapper("qpsk")
    dec = genjscc.ldpc_decoder(CODE_5G, num_iters=20)
    got = run_chain([enc, mapper, channel, demapper, dec], [u8_pdu(p) for p in sent], len(sent))
    assert len(got) == len(sent)
    for msg, p in zip(got, sent, strict=True):
        assert pmt.to_bool(meta_ref(msg, "crc_ok")) is False
        assert pmt.to_bool(meta_ref(msg, "syndrome_ok")) is False
        assert pmt.to_long(meta_ref(msg, "iterations")) == 20
        assert data_of(msg).size == p.size
    assert dec.num_crc_fail() == len(sent) and dec.num_errors() == 0


def test_ofdm_16qam_high_snr():
    """CRC + 5G LDPC over ofdm_qam_tx -> channel_model (24 dB) -> ofdm_qam_rx, 16-QAM."""
    num, tail = 30, 4
    code = "5gnr:bg2:k=512:e=1024:qm=4"
    sent = payloads([125] * (num + tail), seed=11)  # 2 codewords = 512 16-QAM symbols
    tb = gr.top_block()
    enc = genjscc.ldpc_encoder(code)
    mapper = genjscc.qam_mapper("16qam", input_format="unpacked")
    tx = genjscc.ofdm_qam_tx("16qam")
    chan = channels.channel_model(noise_voltage=noise_voltage_for_esno(24.0), block_tags=True,
                                  noise_seed=12)
    rx = genjscc.ofdm_qam_rx("16qam")
    demapper = genjscc.soft_demapper("16qam")
    dec = genjscc.ldpc_decoder(code)
    sink = blocks.message_debug()
    tb.msg_connect(enc, "out", mapper, "in")
    tb.msg_connect(mapper, "out", tx, "in")
    tb.connect(tx, chan, rx)
    tb.msg_connect(rx, "out", demapper, "in")
    tb.msg_connect(demapper, "out", dec, "in")
    tb.msg_connect(dec, "out", sink, "store")
    tb.start()
    try:
        for p in sent:
            enc.to_basic_block()._post(IN, u8_pdu(p))
        deadline = time.monotonic() + TIMEOUT_S
        while sink.num_messages() < num and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    good = set()
    for i in range(sink.num_messages()):
        msg = sink.get_message(i)
        k = pmt.to_long(meta_ref(msg, "packet_num"))
        assert not pmt.dict_has_key(pmt.car(msg), pmt.intern("num_info_bits"))  # OFDM drops it
        if 0 <= k < num and pmt.to_bool(meta_ref(msg, "crc_ok")):
            assert np.array_equal(data_of(msg), sent[k])
            good.add(k)
    assert len(good) >= 0.99 * num
    assert dec.num_errors() == 0


def test_run_coded_point_pdu():
    point = run_coded_point("qpsk", 3.0, medium="pdu", num_packets=10, seed=1, timeout_s=30)
    assert point.packets_sent == point.packets_received == point.packets_crc_ok == 10
    assert point.bler == 0.0 and point.bit_errors == 0 and point.bits_compared == 10 * 61 * 8
    assert point.channel_ber > 0.03 and point.codewords_per_packet == 1
    assert point.code_rate == pytest.approx(488 / 1024)
    assert point.ebno_db == pytest.approx(3.0 - 10 * math.log10(2 * 488 / 1024))
    assert point.esno_rx_db == pytest.approx(3.0, abs=1e-3)
    assert 0 < point.mean_iterations < 50
    with pytest.raises(ValueError):
        run_coded_point("64qam", 10.0, num_packets=1)  # 1024 bits are not whole 64-QAM symbols
    with pytest.raises(ValueError):
        run_coded_point("qpsk", 10.0, medium="ofdm", payload_bytes=2000, num_packets=1)


# --------------------------------------------------------------------------- bad input


def test_malformed_pdus_are_counted_and_the_graph_keeps_running():
    sent = payloads([61, 61], seed=13)
    enc = genjscc.ldpc_encoder(CODE_5G)
    (c0,) = run_chain([enc], [u8_pdu(sent[0])], 1)
    (c1,) = run_chain([enc], [u8_pdu(sent[1])], 1)
    llr0 = 6.0 * (1.0 - 2.0 * data_of(c0).astype(np.float32))
    llr1 = 6.0 * (1.0 - 2.0 * data_of(c1).astype(np.float32))
    # NaN (erasures) and infinities are clipped by the decoder, not rejected.
    llr1[::17] = np.nan
    llr1[5::31] = np.sign(llr1[5::31]) * np.inf
    meta = pmt.car(c0)
    too_many = pmt.dict_add(meta, pmt.intern("num_info_bits"), pmt.from_long(489))
    not_long = pmt.dict_add(meta, pmt.intern("num_info_bits"), pmt.from_double(1.5))
    wrong_cw = pmt.dict_add(meta, pmt.intern("codewords"), pmt.from_long(2))
    bad = [
        pmt.intern("not a pdu"),
        pmt.cons(pmt.PMT_T, pmt.to_pmt(llr0)),                      # metadata not a dict
        u8_pdu(np.ones(1024)),                                      # not f32
        pmt.cons(pmt.make_dict(), pmt.to_pmt(llr0.astype(np.complex64))),
        pmt.cons(pmt.make_dict(), pmt.make_f32vector(0, 0.0)),      # empty
        f32_pdu(llr0[:1000]),                                       # not a multiple of e
        f32_pdu(llr0, too_many),
        f32_pdu(llr0, not_long),
        f32_pdu(llr0, wrong_cw),
    ]
    dec = genjscc.ldpc_decoder(CODE_5G)
    good = [f32_pdu(llr0, meta), f32_pdu(llr1, pmt.car(c1))]
    got = run_chain([dec], [bad[0], good[0], *bad[1:], good[1]], 2)
    assert dec.num_errors() == len(bad)
    assert_decoded(got, sent)

    enc_bad = [
        pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(8, np.float32))),
        pmt.cons(pmt.make_dict(), pmt.make_u8vector(0, 0)),
        pmt.PMT_NIL,
    ]
    unpacked = genjscc.ldpc_encoder(SHORT, crc="", input_format="unpacked")
    got = run_chain([unpacked], [*enc_bad, u8_pdu([0, 2, 1]), u8_pdu([1, 0, 1])], 1)
    assert unpacked.num_errors() == len(enc_bad) + 1 and len(got) == 1


def test_constructor_errors():
    with pytest.raises(ValueError):
        genjscc.ldpc_encoder("")
    with pytest.raises(ValueError):
        genjscc.ldpc_encoder("5gnr:bg2:k=512")  # neither e nor rate
    with pytest.raises(ValueError):
        genjscc.ldpc_encoder(CODE_5G, crc="24Z")
    with pytest.raises(ValueError):
        genjscc.ldpc_encoder(CODE_5G, input_format="bytes")
    with pytest.raises(TypeError):
        genjscc.ldpc_encoder(42)
    with pytest.raises(ValueError):
        genjscc.ldpc_decoder(CODE_5G, decoder="viterbi")
    with pytest.raises(ValueError):
        genjscc.ldpc_decoder(CODE_5G, output_format="hex")
    with pytest.raises(ValueError):
        genjscc.ldpc_decoder(CODE_5G, num_iters=-1)
    with pytest.raises(ValueError):
        genjscc.ldpc_decoder(CODE_5G, decoder="normalized-minsum", options={"bogus": 1})
    dec = genjscc.ldpc_decoder(get_code(SHORT), decoder="normalized-minsum",
                               options={"scaling": 0.8}, crc="")
    assert dec.crc_length == 0 and dec.code.n == 49
