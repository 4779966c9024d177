"""PDU blocks in real flowgraphs: qam_mapper, pdu_channel, soft_demapper.

PDUs are posted straight into the first block and collected with blocks.message_debug; every
test stops its graph itself after a bounded wait.
"""

from __future__ import annotations

import numpy as np
import pmt
import pytest
import torch

from flowgraph_helpers import c32_pdu, data_of, messages, meta_ref, run_chain, u8_pdu
from genjscc.core.mapping import constellation
from gnuradio import blocks, genjscc

pytestmark = pytest.mark.flowgraph

MODULATIONS = ["bpsk", "qpsk", "16qam", "64qam", "256qam"]


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_roundtrip_high_snr_is_error_free(modulation):
    rng = np.random.default_rng(1)
    payloads = [rng.integers(0, 256, 3 * (10 + k), dtype=np.uint8) for k in range(6)]
    mapper = genjscc.qam_mapper(modulation)
    channel = genjscc.pdu_channel("awgn", esno_db=35.0, seed=3)
    demapper = genjscc.soft_demapper(modulation, noise_var=1.0)
    got = run_chain([mapper, channel, demapper], [u8_pdu(p) for p in payloads], len(payloads))
    assert len(got) == len(payloads)
    for msg, sent in zip(got, payloads, strict=True):
        llr = data_of(msg)
        assert llr.dtype == np.float32 and llr.size == sent.size * 8
        assert np.array_equal(np.packbits((llr < 0).astype(np.uint8)), sent)
        assert pmt.symbol_to_string(meta_ref(msg, "modulation")) == modulation
        assert pmt.to_long(meta_ref(msg, "num_bits")) == sent.size * 8
        assert pmt.to_double(meta_ref(msg, "noise_var")) == pytest.approx(10**-3.5, rel=1e-6)
        assert pmt.to_long(meta_ref(msg, "lost_before")) == 0
    assert mapper.num_processed() == demapper.num_processed() == len(payloads)
    assert mapper.num_errors() + channel.num_errors() + demapper.num_errors() == 0


def test_mapper_output_and_metadata_are_kept():
    mapper = genjscc.qam_mapper("qpsk", input_format="unpacked")
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("frame"), pmt.from_long(7))
    (msg,) = run_chain([mapper], [u8_pdu([0, 0, 0, 1, 1, 0, 1, 1], meta)], 1)
    s = 1 / np.sqrt(2)
    expected = np.array([s + 1j * s, s - 1j * s, -s + 1j * s, -s - 1j * s], np.complex64)
    assert data_of(msg).dtype == np.complex64
    np.testing.assert_allclose(data_of(msg), expected, atol=1e-6)
    assert pmt.to_long(meta_ref(msg, "frame")) == 7
    assert pmt.to_long(meta_ref(msg, "num_bits")) == 8


def test_llr_signs_and_scale_bpsk():
    """LLR = ln P(b=0)/P(b=1): bit 0 -> +1 -> positive LLR 4 Re(y)/N0."""
    bits = [0, 1, 1, 0, 1]
    mapper = genjscc.qam_mapper("bpsk", input_format="unpacked")
    demapper = genjscc.soft_demapper("bpsk", noise_var=0.5)
    (msg,) = run_chain([mapper, demapper], [u8_pdu(bits)], 1)
    np.testing.assert_allclose(data_of(msg), [8.0, -8.0, -8.0, 8.0, -8.0], rtol=1e-6)


def test_set_noise_var_scales_llrs():
    demapper = genjscc.soft_demapper("qpsk", noise_var=1.0)
    y = np.array([0.5 + 0.25j], np.complex64)
    (a,) = run_chain([demapper], [c32_pdu(y)], 1)
    demapper.set_noise_var(0.25)
    (b,) = run_chain([demapper], [c32_pdu(y)], 1)
    np.testing.assert_allclose(data_of(b), 4 * data_of(a), rtol=1e-5)
    with pytest.raises(ValueError):
        demapper.set_noise_var(0.0)


def test_metadata_noise_var_flows_into_demapper():
    """The demapper uses the channel's N0, not its own (wrong) parameter."""
    rng = np.random.default_rng(2)
    mapper = genjscc.qam_mapper("16qam")
    channel = genjscc.pdu_channel("awgn", esno_db=8.0, seed=5)
    demapper = genjscc.soft_demapper("16qam", noise_var=5.0)
    tap = blocks.message_debug()
    payload = rng.integers(0, 256, 40, dtype=np.uint8)
    (llr_msg,) = run_chain([mapper, channel, demapper], [u8_pdu(payload)], 1,
                           taps=[(channel, tap)])
    (rx_msg,) = messages(tap)
    n0 = pmt.to_double(meta_ref(rx_msg, "noise_var"))
    assert n0 == pytest.approx(10**-0.8, rel=1e-6)
    assert pmt.to_double(meta_ref(rx_msg, "esno_db")) == pytest.approx(8.0)
    y = torch.from_numpy(data_of(rx_msg).astype(np.complex64))
    expected = constellation("16qam").demap(y, n0).numpy()
    np.testing.assert_allclose(data_of(llr_msg), expected, rtol=1e-5, atol=1e-5)


def test_empty_noise_var_key_uses_parameter():
    demapper = genjscc.soft_demapper("bpsk", noise_var=2.0, noise_var_key="")
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("noise_var"), pmt.from_double(0.01))
    (msg,) = run_chain([demapper], [c32_pdu([1.0], meta)], 1)
    np.testing.assert_allclose(data_of(msg), [2.0], rtol=1e-6)


def test_rayleigh_equalized_per_symbol_noise_var():
    rng = np.random.default_rng(3)
    mapper = genjscc.qam_mapper("16qam")
    channel = genjscc.pdu_channel("rayleigh", esno_db=30.0, seed=7, block_length=8)
    demapper = genjscc.soft_demapper("16qam", noise_var=1.0)
    tap = blocks.message_debug()
    payload = rng.integers(0, 256, 64, dtype=np.uint8)  # 128 symbols, 16 fading blocks
    (llr_msg,) = run_chain([mapper, channel, demapper], [u8_pdu(payload)], 1,
                           taps=[(channel, tap)])
    (rx_msg,) = messages(tap)
    nv = pmt.to_python(meta_ref(rx_msg, "noise_var"))
    assert nv.dtype == np.float32 and nv.shape == (128,)
    # One coefficient per 8 symbols: the effective N0 = N0/|h|^2 is constant within a block.
    assert np.allclose(nv.reshape(16, 8), nv.reshape(16, 8)[:, :1])
    assert len(np.unique(nv)) > 1
    y = torch.from_numpy(data_of(rx_msg).astype(np.complex64))
    expected = constellation("16qam").demap(y, torch.from_numpy(nv)).numpy()
    np.testing.assert_allclose(data_of(llr_msg), expected, rtol=1e-4, atol=1e-4)
    hard = (data_of(llr_msg) < 0).astype(np.uint8)
    weak = np.repeat(nv > 10**-1.5, 4)  # deep fades may flip bits; the rest must be right
    assert np.array_equal(hard[~weak], np.unpackbits(payload)[~weak])


def test_rayleigh_without_equalization_reports_channel():
    channel = genjscc.pdu_channel("rayleigh", esno_db=60.0, seed=1, equalize=False)
    x = np.ones(16, np.complex64)
    (msg,) = run_chain([channel], [c32_pdu(x)], 1)
    h = pmt.to_python(meta_ref(msg, "channel_h"))
    assert h.shape == (16,) and np.allclose(h, h[0])  # block_length 0: one per PDU
    np.testing.assert_allclose(data_of(msg), h * x, atol=1e-2)
    assert pmt.to_double(meta_ref(msg, "noise_var")) == pytest.approx(1e-6)


def test_gilbert_elliott_losses_are_counted():
    num = 400
    msgs = [c32_pdu([1.0], pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(i)))
            for i in range(num)]

    def run(seed):
        channel = genjscc.pdu_channel(esno_db=20.0, loss_rate=0.3, mean_burst_length=3.0,
                                      seed=seed)
        got = run_chain([channel], msgs, num, done=lambda: channel.num_processed() >= num)
        return channel, got

    channel, got = run(11)
    seqs = [pmt.to_long(meta_ref(m, "seq")) for m in got]
    lost_before = [pmt.to_long(meta_ref(m, "lost_before")) for m in got]
    assert seqs == sorted(seqs)
    assert channel.num_lost() + len(got) == num == channel.num_processed()
    assert channel.num_errors() == 0
    # Each delivered PDU reports exactly the gap in sequence numbers before it.
    gaps = np.diff([-1, *seqs]) - 1
    assert lost_before == gaps.tolist()
    assert channel.num_lost() == sum(lost_before) + (num - 1 - seqs[-1])
    assert 0.15 < channel.num_lost() / num < 0.45
    bursts = [g for g in gaps if g > 0]
    assert np.mean(bursts) > 1.5  # bursty, not independent losses (mean burst 1 / 0.7)
    _, again = run(11)
    assert [pmt.to_long(meta_ref(m, "seq")) for m in again] == seqs


def test_channel_setters():
    channel = genjscc.pdu_channel(esno_db=10.0)
    channel.set_esno_db(20.0)
    assert channel.noise_var() == pytest.approx(0.01)
    (msg,) = run_chain([channel], [c32_pdu([1.0])], 1)
    assert pmt.to_double(meta_ref(msg, "noise_var")) == pytest.approx(0.01)
    channel.set_loss_rate(0.5)
    channel.set_mean_burst_length(4.0)
    with pytest.raises(ValueError):
        channel.set_loss_rate(1.0)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (genjscc.qam_mapper, {"modulation": "32qam"}),
        (genjscc.qam_mapper, {"input_format": "bits"}),
        (genjscc.soft_demapper, {"method": "mmse"}),
        (genjscc.soft_demapper, {"noise_var": 0.0}),
        (genjscc.pdu_channel, {"model": "rician"}),
        (genjscc.pdu_channel, {"loss_rate": 1.0}),
        (genjscc.pdu_channel, {"block_length": -1}),
    ],
)
def test_bad_parameters_raise(factory, kwargs):
    with pytest.raises(ValueError):
        factory(**kwargs)


NOT_A_PDU = pmt.intern("hello")
NON_UNIFORM = pmt.cons(pmt.make_dict(), pmt.make_vector(3, pmt.from_long(1)))
F32_PDU = pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(8, np.float32)))
BAD_META = pmt.cons(pmt.from_long(3), pmt.to_pmt(np.ones(8, np.uint8)))
EMPTY_U8 = pmt.cons(pmt.make_dict(), pmt.make_u8vector(0, 0))
EMPTY_C32 = pmt.cons(pmt.make_dict(), pmt.make_c32vector(0, 0))


def _bad_nv_length():
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("noise_var"),
                        pmt.to_pmt(np.ones(3, np.float32)))
    return c32_pdu(np.ones(4), meta)


def _mismatched_modulation():
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("modulation"), pmt.intern("qpsk"))
    return c32_pdu(np.ones(4), meta)


MALFORMED = {
    "mapper": (
        lambda: genjscc.qam_mapper("64qam"),
        [NOT_A_PDU, NON_UNIFORM, F32_PDU, BAD_META, EMPTY_U8,
         u8_pdu([1, 2]),  # 16 bits do not fill 6-bit symbols
         c32_pdu([1.0, 2.0])],
        u8_pdu([1, 2, 3]),
    ),
    "mapper_unpacked": (
        lambda: genjscc.qam_mapper("qpsk", input_format="unpacked"),
        [u8_pdu([0, 1, 2, 1]), u8_pdu([1, 0, 1])],
        u8_pdu([1, 0]),
    ),
    "demapper": (
        lambda: genjscc.soft_demapper("16qam"),
        [NOT_A_PDU, NON_UNIFORM, F32_PDU, EMPTY_C32, u8_pdu([1, 2]), _bad_nv_length(),
         _mismatched_modulation()],
        c32_pdu([0.3 + 0.3j]),
    ),
    "channel": (
        lambda: genjscc.pdu_channel("rayleigh"),
        [NOT_A_PDU, NON_UNIFORM, F32_PDU, EMPTY_C32, u8_pdu([1, 2]), BAD_META],
        c32_pdu([1.0, -1.0]),
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_is_logged_counted_and_dropped(name):
    factory, bad, good = MALFORMED[name]
    blk = factory()
    got = run_chain([blk], [*bad, good], 1)
    assert len(got) == 1  # only the valid PDU, after all the bad ones
    assert pmt.is_pair(got[0]) and pmt.length(pmt.cdr(got[0])) > 0
    assert blk.num_errors() == len(bad)
    assert blk.num_processed() == 1


def test_maxlog_method_matches_core():
    y = np.array([0.1 + 0.9j, -0.7 - 0.2j, 0.3 - 0.3j], np.complex64)
    demapper = genjscc.soft_demapper("64qam", noise_var=0.05, method="maxlog")
    (msg,) = run_chain([demapper], [c32_pdu(y)], 1)
    expected = constellation("64qam").demap(torch.from_numpy(y), 0.05, "maxlog").numpy()
    np.testing.assert_allclose(data_of(msg), expected, rtol=1e-6)
