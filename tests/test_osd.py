"""Ordered-statistics decoding (genjscc.core.fec.osd) and BP-OSD (``osd_order`` of the BP
decoders): codewords out, gains over BP on short codes, 5G NR filler and punctured bits, bad
input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.fec.ldpc5g import NR5GLDPC
from genjscc.core.fec.osd import OSD_ORDERS, osd_decode


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _awgn_words(code, num: int, ebno_db: float, seed: int):
    """(info bits [num, k] uint8, rate-recovered LLRs [num, n] float32): BPSK over AWGN."""
    rng = np.random.default_rng(seed)
    info = torch.from_numpy(rng.integers(0, 2, (num, code.k))).float()
    tx = code.encode(info).numpy()
    sigma = np.sqrt(1.0 / (2.0 * code.k / code.e * 10 ** (ebno_db / 10)))
    y = (1.0 - 2.0 * tx) + sigma * rng.standard_normal(tx.shape)
    llr = torch.from_numpy((2.0 * y / sigma**2).astype(np.float32))
    return info.to(torch.uint8), code.rate_recover(llr)


def _syndrome(h: np.ndarray, bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.int64) @ h.T.astype(np.int64)) % 2


@pytest.mark.parametrize("order", OSD_ORDERS)
def test_osd_returns_codewords_and_keeps_a_codeword_hard_decision(order):
    code = get_code("LDPC_N49_K24")
    _, llr = _awgn_words(code, 40, 1.0, seed=3)
    cw = osd_decode(code.H, llr, order)
    assert cw.shape == (40, code.n) and cw.dtype == np.uint8
    assert not _syndrome(code.H, cw).any()
    # a hard decision that is already a codeword has discrepancy 0: OSD keeps it
    sent = code.encode(torch.ones(3, code.k)).numpy()
    llr_clean = (1.0 - 2.0 * sent) * np.array([[0.3], [2.0], [7.0]])
    assert np.array_equal(osd_decode(code.H, llr_clean, order), sent.astype(np.uint8))


def test_bp_osd_corrects_words_bp_fails_and_is_never_worse():
    """LDPC(49,24) at Eb/N0 = 3 dB, 300 words (seed 7): BP-30 leaves words with a nonzero
    syndrome; OSD-2 on exactly those words fixes most of them (21 block errors -> 4) and
    breaks no word BP got."""
    code = get_code("LDPC_N49_K24")
    info, llr = _awgn_words(code, 300, 3.0, seed=7)
    bp = make_decoder("bp", code, num_iters=30).decode(llr)
    bp_osd = make_decoder("bp", code, num_iters=30, osd_order=2).decode(llr)
    pos = code.info_positions
    bp_err = (bp.bits[:, pos] != info).any(1)
    osd_err = (bp_osd.bits[:, pos] != info).any(1)
    assert torch.equal(bp_osd.osd, ~bp.syndrome_ok)  # OSD ran on the failed words only
    assert bool(bp_osd.syndrome_ok.all())
    assert not _syndrome(code.H, bp_osd.bits.numpy()).any()
    assert int(bp_err.sum()) >= 15  # the seed gives BP something to fail on
    assert not bool((osd_err & ~bp_err).any())
    assert int(osd_err.sum()) <= int(bp_err.sum()) // 3  # measured: 21 -> 4
    # a variant is a parameter of any BP decoder, not a class of its own
    ms = make_decoder("normalized-minsum", code, num_iters=30, osd_order=1).decode(llr)
    assert bool(ms.syndrome_ok.all()) and ms.osd is not None


def test_osd_5g_nr_filler_and_punctured_bits():
    """A 5G NR code: punctured/never-sent positions (LLR 0) and filler bits (FILLER_LLR) go
    through OSD as they are; the filler bits of the output are the known zeros."""
    code = NR5GLDPC(48, 384, modulation_order=2)  # the burst OFDM PHY's header code
    _, llr = _awgn_words(code, 6, -1.0, seed=1)
    assert (llr == 0).any() and (llr[:, code.filler_positions] > 100).all()
    cw = osd_decode(code.H, llr, 1)
    assert not _syndrome(code.H, cw).any()
    assert not cw[:, code.filler_positions].any()


def test_osd_bad_input_is_a_clear_error():
    code = get_code("LDPC_N49_K24")
    good = np.ones((2, code.n))
    bad = good.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        osd_decode(code.H, bad, 1)
    bad[0, 3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        osd_decode(code.H, bad, 1)
    with pytest.raises(ValueError, match="n = 49"):
        osd_decode(code.H, good[:, :48], 1)
    with pytest.raises(ValueError, match="order"):
        osd_decode(code.H, good, 3)
    with pytest.raises(TypeError, match="real"):
        osd_decode(code.H, good.astype(complex), 1)
    with pytest.raises(ValueError, match="0 and 1"):
        osd_decode(2 * code.H, good, 1)
    with pytest.raises(ValueError, match="osd_order"):
        make_decoder("bp", code, osd_order=3)
    with pytest.raises(ValueError, match="osd_order"):
        make_decoder("bp", code, osd_order=True)
    # BP reads NaN channel LLRs as erasures (0); its OSD stage does the same
    llr = torch.zeros(2, code.n)
    llr[:, ::3] = float("nan")
    res = make_decoder("bp", code, num_iters=5, osd_order=2).decode(llr)
    assert not _syndrome(code.H, res.bits.numpy()).any()
