"""5G NR LDPC (TS 38.212): tables, encoding, rate matching and recovery, segmentation.

References: py3gpp 0.6.0 (nrLDPCEncode, nrRateMatchLDPC, nrRateRecoverLDPC, nrDLSCHInfo,
nrCodeBlockSegmentLDPC). py3gpp's encoder picks the wrong shift set for BG2 when
K = 10 Z <= 640 (it applies K_b = 6/8/9 to K instead of B), so bit-exact encoder comparisons
with it use BG1 or BG2 with Z >= 72; rate matching of small BG2 codes is compared separately on
our codewords, and Sionna (optional) checks the small BG2 encoder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from py3gpp import (
    nrCodeBlockSegmentLDPC,
    nrDLSCHInfo,
    nrLDPCEncode,
    nrRateMatchLDPC,
    nrRateRecoverLDPC,
)

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.crc import CRC
from genjscc.core.fec.ldpc5g import (
    FILLER_LLR,
    LIFTING_SIZES,
    NR5GLDPC,
    base_graph_matrix,
    desegment,
    rate_match_lengths,
    segment,
    segmentation_info,
    select_base_graph,
    select_lifting_size,
)

MOD_NAME = {1: "BPSK", 2: "QPSK", 4: "16QAM", 6: "64QAM", 8: "256QAM"}


def random_bits(shape, seed, dtype=torch.uint8):
    return torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def py3gpp_codeword(code: NR5GLDPC, cw: np.ndarray) -> np.ndarray:
    """Our full codeword in py3gpp's layout: first 2Z dropped, filler bits as -1."""
    d = cw[2 * code.z :].astype(np.int64)
    d[code.k - 2 * code.z : code.k_ldpc - 2 * code.z] = -1
    return d


def random_configs(n_configs: int, seed: int) -> list[tuple[int, int, int, int, int]]:
    """(base_graph, k, e, rv, qm) where py3gpp's encoder is right: BG1, or BG2 with k > 640."""
    rng = np.random.default_rng(seed)
    configs = []
    for i in range(n_configs):
        bg = 1 + i % 2
        k = int(rng.integers(40, 8449)) if bg == 1 else int(rng.integers(641, 3841))
        qm = int(rng.choice([1, 2, 4, 6, 8]))
        rate = float(rng.uniform(0.2, 0.95))
        e = qm * max(1, round(k / (rate * qm)))
        configs.append((bg, k, e, int(rng.integers(0, 4)), qm))
    return configs


# ----------------------------------------------------------------------------- tables


def test_tables():
    assert len(LIFTING_SIZES) == 51 and LIFTING_SIZES[0] == 2 and LIFTING_SIZES[-1] == 384
    bg1, bg2 = base_graph_matrix(1, 384), base_graph_matrix(2, 384)
    assert bg1.shape == (46, 68) and (bg1 >= 0).sum() == 316
    assert bg2.shape == (42, 52) and (bg2 >= 0).sum() == 197
    assert bg1[0, 0] == 307 and base_graph_matrix(1, 2)[0, 0] == 0  # V = 250 for i_LS = 0
    assert base_graph_matrix(2, 15)[0, 0] == 145 % 15
    with pytest.raises(ValueError, match="lifting size"):
        base_graph_matrix(1, 17)
    with pytest.raises(ValueError, match="base_graph"):
        base_graph_matrix(3, 16)


def test_base_graph_lifting_and_segmentation_match_py3gpp():
    for a, r in [(100, 0.5), (292, 0.9), (293, 0.9), (3824, 0.6), (3824, 0.7), (3825, 0.6),
                 (5000, 0.25), (5000, 0.3), (20000, 0.5), (100000, 0.9), (4000, 0.2), (600, 0.8)]:
        ref = nrDLSCHInfo(a, r)
        bg = select_base_graph(a, r)
        assert bg == ref["BGN"], (a, r)
        seg = segmentation_info(a + ref["L"], bg)
        got = (seg.num_code_blocks, seg.z, seg.k_ldpc, seg.num_filler, seg.cb_crc_length)
        assert got == (ref["C"], ref["Zc"], ref["K"], ref["F"], ref["Lcb"]), (a, r)
    assert select_lifting_size(12, 2) == 2 and select_lifting_size(8448, 1) == 384
    assert select_lifting_size(192, 2) == 32  # K_b = 6 for B <= 192
    assert select_lifting_size(193, 2) == 26  # K_b = 8 for 192 < B <= 560
    with pytest.raises(ValueError, match="do not fit"):
        select_lifting_size(3841, 2)


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("bg", [1, 2])
def test_codewords_satisfy_lifted_h_for_every_lifting_size(bg):
    kb = 22 if bg == 1 else 10
    for i, z in enumerate(LIFTING_SIZES):
        # the largest k that selects this Z (BG2 uses K_b = 6, 8 or 9 for short blocks)
        k = next(k for k in range(kb * z, 0, -1) if select_lifting_size(k, bg) == z)
        shorter = k - min(k - 2 * z, z // 3)  # more filler bits where Z stays the same
        k = shorter if select_lifting_size(shorter, bg) == z else k
        code = NR5GLDPC(k, 2 * k, base_graph=bg)
        assert code.z == z and code.n == (68 if bg == 1 else 52) * z
        cw = code.encode_codeword(random_bits((2, k), seed=i))
        assert torch.equal(cw[:, :k], random_bits((2, k), seed=i))
        assert not cw[:, k : code.k_ldpc].any()  # filler bits encoded as zeros
        assert not code.syndrome(cw).any()
        h = code.H
        assert h.shape == (code.m, code.n)
        assert not ((h @ cw.numpy().T.astype(np.int64)) % 2).any()


def test_encoder_and_rate_matching_bit_exact_with_py3gpp():
    for i, (bg, k, e, rv, qm) in enumerate(random_configs(24, seed=5)):
        code = NR5GLDPC(k, e, base_graph=bg, rv=rv, modulation_order=qm)
        info = random_bits((2, k), seed=100 + i)
        cbs = np.full((code.k_ldpc, 2), -1, dtype=np.int64)
        cbs[:k] = info.numpy().T
        ref_cw = nrLDPCEncode(cbs, bg)
        ref_tx = nrRateMatchLDPC(ref_cw, 2 * e, rv, MOD_NAME[qm], 1).reshape(2, e)
        cw = code.encode_codeword(info)
        for b in range(2):
            assert np.array_equal(py3gpp_codeword(code, cw[b].numpy()), ref_cw[:, b]), code
        assert np.array_equal(code.encode(info).numpy(), ref_tx), code
        assert np.array_equal(code.rate_match(cw).numpy(), ref_tx)


def test_rate_matching_of_small_bg2_codes_matches_py3gpp():
    for i, (k, e, rv, qm) in enumerate([(12, 30, 0, 2), (100, 300, 1, 2), (193, 400, 2, 4),
                                        (400, 1206, 3, 6), (600, 904, 1, 8), (640, 700, 2, 1)]):
        code = NR5GLDPC(k, e, base_graph=2, rv=rv, modulation_order=qm)
        info = random_bits((1, k), seed=i)
        cw = code.encode_codeword(info)
        assert not code.syndrome(cw).any()
        d = py3gpp_codeword(code, cw[0].numpy())[:, None]
        ref = nrRateMatchLDPC(d, e, rv, MOD_NAME[qm], 1)
        assert np.array_equal(code.encode(info)[0].numpy(), ref), code


def test_matches_sionna_when_installed():
    ldpc = pytest.importorskip("sionna.phy.fec.ldpc")
    for i, (k, e, qm, bg) in enumerate([(20, 60, 2, 2), (150, 400, 4, 2), (561, 800, 2, 2),
                                        (1000, 1500, 6, 1), (3000, 3600, 8, 1)]):
        ref = ldpc.LDPC5GEncoder(k, e, num_bits_per_symbol=qm, bg=f"bg{bg}")
        u = random_bits((2, k), seed=i).float()
        out = ref(u, rv=[0, 1, 2, 3])
        for rv in range(4):
            code = NR5GLDPC(k, e, base_graph=bg, rv=rv, modulation_order=qm)
            assert torch.equal(code.encode(u), out[:, rv]), (code, rv)


def test_encode_shapes_dtypes_and_device():
    code = NR5GLDPC(100, 216, base_graph=2)
    info = random_bits((3, 4, 100), seed=3)
    for dtype in (torch.uint8, torch.float32, torch.bool, torch.int64):
        tx = code(info.to(dtype))
        assert tx.shape == (3, 4, 216) and tx.dtype == dtype and tx.device == info.device
        assert torch.equal(tx.to(torch.uint8), code.encode(info))
    assert torch.equal(code.encode(info[0, 0]), code.encode(info)[0, 0])  # unbatched input
    assert code.code_rate == pytest.approx(100 / 216)
    assert list(code.info_positions) == list(range(100))


# ----------------------------------------------------------------------------- rate recovery


@pytest.mark.parametrize(
    ("k", "e", "bg", "rv", "qm"),
    [(500, 1200, 1, 0, 2), (100, 1000, 2, 2, 4), (3000, 3306, 1, 3, 6), (64, 4000, 2, 1, 8)],
)
def test_rate_recover_inverts_rate_matching(k, e, bg, rv, qm):
    code = NR5GLDPC(k, e, base_graph=bg, rv=rv, modulation_order=qm)
    cw = code.encode_codeword(random_bits((3, k), seed=k))
    llr_tx = 4.0 * (1.0 - 2.0 * code.encode(cw[..., :k]).float())  # noiseless, LLR = ln P0/P1
    llr = code.rate_recover(llr_tx)
    assert llr.shape == (3, code.n) and llr.dtype == torch.float32
    counts = np.bincount(code.rate_matching_index, minlength=code.n)
    sent = torch.as_tensor(counts > 0)
    assert torch.equal((llr[:, sent] < 0).to(torch.uint8), cw[:, sent])  # hard decision
    assert torch.equal(llr[:, sent].abs(), 4.0 * torch.as_tensor(counts[counts > 0]).float()
                       .expand(3, -1))  # repeated bits add up
    assert not llr[:, : 2 * code.z].any()  # punctured
    assert (llr[:, code.k : code.k_ldpc] == FILLER_LLR).all()  # known zeros
    assert not llr[:, ~sent & ~_mask(code.n, code.k, code.k_ldpc)].any()
    assert (code.rate_recover(llr_tx, filler_llr=7.0)[:, code.k : code.k_ldpc] == 7.0).all()


def test_rate_recover_matches_py3gpp():
    rng = np.random.default_rng(11)
    # (A, R) of one-code-block transport blocks, then E, rv, Q_m
    configs = [(300, 0.5, 604, 0, 2), (1000, 0.3, 3600, 1, 4), (3000, 0.8, 3900, 2, 6),
               (6000, 0.7, 8800, 3, 8), (120, 0.2, 2000, 2, 2), (8000, 0.9, 8410, 0, 1)]
    for a, r, e, rv, qm in configs:
        info = nrDLSCHInfo(a, r)
        assert info["C"] == 1
        code = NR5GLDPC(a + info["L"], e, base_graph=info["BGN"], rv=rv, modulation_order=qm)
        assert code.z == info["Zc"]
        llr = rng.normal(0.0, 3.0, e)
        ref = nrRateRecoverLDPC(llr, a, r, rv, MOD_NAME[qm], 1, numCB=1)[:, 0]
        ours = code.rate_recover(torch.as_tensor(llr[None]))[0, 2 * code.z :].numpy()
        filler = np.isinf(ref)  # py3gpp marks filler bits with +inf (same sign as ours)
        assert np.array_equal(np.flatnonzero(filler), np.arange(code.k, code.k_ldpc) - 2 * code.z)
        assert (ref[filler] > 0).all() and (ours[filler] == FILLER_LLR).all()
        np.testing.assert_allclose(ours[~filler], ref[~filler], rtol=1e-12, atol=1e-12)


def test_limited_buffer_rate_matching():
    full = NR5GLDPC(3000, 7000, base_graph=1, rv=2)
    lbrm = NR5GLDPC(3000, 7000, base_graph=1, rv=2, tbs_lbrm=4000, num_code_blocks=1)
    n = 66 * full.z
    assert full.n_cb == n and full.k0 == 33 * full.z
    assert lbrm.n_cb == (4000 * 3) // 2 and lbrm.n_cb < n
    assert lbrm.k0 == (33 * lbrm.n_cb) // n * full.z
    index = lbrm.rate_matching_index
    assert index.max() < 2 * full.z + lbrm.n_cb  # never reads past the limited buffer
    # 7000 bits: the full buffer (9504 - 168 filler bits) sends each bit at most once, the
    # limited one (6000 - 168) wraps and repeats some.
    assert np.bincount(full.rate_matching_index).max() == 1
    assert np.bincount(index).max() == 2
    assert NR5GLDPC.from_spec(lbrm.name).n_cb == lbrm.n_cb


# ----------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize(("a", "r"), [(20000, 0.5), (4000, 0.2), (2000, 0.5)])
def test_segmentation_matches_py3gpp_and_round_trips(a, r):
    bg = select_base_graph(a, r)
    crc_name = "24A" if a > 3824 else "16"
    payload = random_bits((2, a), seed=a)
    tb = CRC(crc_name).attach(payload)
    blocks = segment(tb, bg)
    seg = segmentation_info(tb.shape[-1], bg)
    assert blocks.shape == (2, seg.num_code_blocks, seg.k_prime)
    for b in range(2):
        ref = nrCodeBlockSegmentLDPC(tb[b].numpy().astype(np.int64), bg)
        assert np.array_equal(blocks[b].numpy().T, ref[: seg.k_prime])
        assert (ref[seg.k_prime :] == -1).all()  # py3gpp's filler bits
    tb_back, ok = desegment(blocks, tb.shape[-1], bg)
    assert torch.equal(tb_back, tb) and ok.all()
    if seg.num_code_blocks > 1:
        broken = blocks.clone()
        broken[1, 1, 5] ^= 1
        _, ok = desegment(broken, tb.shape[-1], bg)
        assert ok.tolist() == [[True] * seg.num_code_blocks, [True, False] + [True] * (
            seg.num_code_blocks - 2)]


def test_transport_block_chain_matches_py3gpp():
    """Segmentation, per-block encoding with E_r, concatenation: py3gpp's whole DL-SCH chain."""
    a, r, qm, rv = 9000, 0.8, 4, 1
    bg = select_base_graph(a, r)
    tb = CRC("24A").attach(random_bits((1, a), seed=9))[0]
    blocks = segment(tb, bg)
    c = blocks.shape[0]
    g = 4 * (round(a / r) // 4) + 4 * 3  # not a multiple of 4 C: E_r differ
    lengths = rate_match_lengths(g, c, qm)
    assert sum(lengths) == g and len(set(lengths)) == 2
    ours = torch.cat([
        NR5GLDPC(blocks.shape[1], e_r, base_graph=bg, rv=rv, modulation_order=qm).encode(blk)
        for blk, e_r in zip(blocks, lengths, strict=True)
    ])
    ref_cbs = nrCodeBlockSegmentLDPC(tb.numpy().astype(np.int64), bg)
    ref = nrRateMatchLDPC(nrLDPCEncode(ref_cbs, bg), g, rv, MOD_NAME[qm], 1)
    assert np.array_equal(ours.numpy(), ref)


# ----------------------------------------------------------------------------- specs, bad input


def test_spec_strings():
    code = get_code("5GNR:BG2:K=512:RATE=0.5:QM=4:RV=3")
    assert (code.base_graph, code.k, code.e, code.modulation_order, code.rv) == (2, 512, 1024, 4, 3)
    again = NR5GLDPC.from_spec(code.name)
    assert again.name == code.name == "5gnr:bg2:k=512:e=1024:qm=4:rv=3"
    auto = NR5GLDPC.from_spec("5gnr,k=4000,e=4800")  # R = 0.83, A > 3824: BG1
    assert auto.base_graph == 1
    assert NR5GLDPC.from_spec("5gnr:k=3000:e=5000").base_graph == 2  # A <= 3824, R <= 0.67
    with pytest.raises(ValueError, match="K_cb=3840"):  # R <= 0.25 selects BG2: too long
        NR5GLDPC.from_spec("5gnr:k=4000:e=20000")
    for bad, match in [("5gnr:bg2:e=100", "needs k"), ("5gnr:k=100:e=200:foo=1", "unknown"),
                       ("5gnr:k=100:e=200:k=3", "repeated"), ("5gnr:k=100", "exactly one"),
                       ("5gnr:k=1x:e=200", "invalid"), ("ldpc:k=100:e=200", "starts with")]:
        with pytest.raises(ValueError, match=match):
            NR5GLDPC.from_spec(bad)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="K_cb=3840"):
        NR5GLDPC(4000, 8000, base_graph=2)
    with pytest.raises(ValueError, match="K_cb=8448"):
        NR5GLDPC(8449, 9000, base_graph=1)
    with pytest.raises(ValueError, match="K_cb=8448"):
        NR5GLDPC(9000, 9000)
    with pytest.raises(ValueError, match="multiple of modulation_order"):
        NR5GLDPC(100, 301, modulation_order=2)
    with pytest.raises(ValueError, match="modulation_order"):
        NR5GLDPC(100, 300, modulation_order=3)
    with pytest.raises(ValueError, match="rv"):
        NR5GLDPC(100, 300, rv=4)
    with pytest.raises(ValueError, match="exactly one"):
        NR5GLDPC(100, 300, code_rate=0.5)
    with pytest.raises(ValueError, match="code_rate"):
        NR5GLDPC(100, code_rate=1.5)
    with pytest.raises(TypeError, match="k must be an int"):
        NR5GLDPC(100.0, 300)
    code = NR5GLDPC(100, 300, base_graph=2)
    with pytest.raises(ValueError, match="last dimension 100"):
        code.encode(torch.zeros(2, 99))
    with pytest.raises(ValueError, match="only 0 and 1"):
        code.encode(torch.full((2, 100), 3))
    with pytest.raises(ValueError, match="last dimension e=300"):
        code.rate_recover(torch.zeros(2, 299))
    with pytest.raises(TypeError, match="floating"):
        code.rate_recover(torch.zeros(2, 300, dtype=torch.int64))
    with pytest.raises(ValueError, match=f"last dimension n={code.n}"):
        code.rate_match(torch.zeros(2, 300))
    with pytest.raises(ValueError, match="multiple of"):
        rate_match_lengths(1001, 2, 2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 1, 116\]"):
        desegment(torch.zeros(1, 2, 116, dtype=torch.uint8), 116, 2)


def _mask(n: int, start: int, stop: int) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[start:stop] = True
    return mask
