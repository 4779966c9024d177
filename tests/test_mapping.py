"""Tests of genjscc.core.mapping: Gray QAM, exact and max-log LLRs, uncoded BER."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from genjscc.core.channel import add_awgn, noise_var_from_ebno_db
from genjscc.core.mapping import MODULATIONS, Constellation, constellation

ALL = list(MODULATIONS)


def _tgpp_points(bps: int) -> np.ndarray:
    """Points from the TS 38.211 §5.1 formulas (float64), re-indexed to gr-genjscc's bit order.

    3GPP interleaves the axes (b0 I, b1 Q, b2 I, ...); gr-genjscc puts the in-phase bits first:
    our bit t of the I axis is 3GPP b_{2t}, our bit t of the Q axis is 3GPP b_{2t+1}.
    """
    pts = np.empty(1 << bps, dtype=np.complex128)
    for i in range(1 << bps):
        c = [(i >> (bps - 1 - k)) & 1 for k in range(bps)]
        s = [1 - 2 * v for v in c]
        if bps == 1:
            pts[i] = s[0]
            continue
        m = bps // 2
        b = [0] * bps
        for t in range(m):
            b[2 * t], b[2 * t + 1] = s[t], s[m + t]
        if bps == 2:
            pts[i] = (b[0] + 1j * b[1]) / math.sqrt(2)
        elif bps == 4:
            pts[i] = (b[0] * (2 - b[2]) + 1j * b[1] * (2 - b[3])) / math.sqrt(10)
        elif bps == 6:
            pts[i] = (
                b[0] * (4 - b[2] * (2 - b[4])) + 1j * b[1] * (4 - b[3] * (2 - b[5]))
            ) / math.sqrt(42)
        else:
            pts[i] = (
                b[0] * (8 - b[2] * (4 - b[4] * (2 - b[6])))
                + 1j * b[1] * (8 - b[3] * (4 - b[5] * (2 - b[7])))
            ) / math.sqrt(170)
    return pts


def _brute_force_llr(y: np.ndarray, noise_var: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """float64 LLRs by log-sum-exp over all M points: [n] -> [n, bps]."""
    bps = round(math.log2(len(pts)))
    metric = -(np.abs(y[:, None] - pts[None, :]) ** 2) / noise_var[:, None]  # [n, M]
    llr = np.empty((len(y), bps))
    idx = np.arange(len(pts))
    for k in range(bps):
        bit = (idx >> (bps - 1 - k)) & 1
        m0, m1 = metric[:, bit == 0], metric[:, bit == 1]
        lse0 = m0.max(1) + np.log(np.exp(m0 - m0.max(1, keepdims=True)).sum(1))
        lse1 = m1.max(1) + np.log(np.exp(m1 - m1.max(1, keepdims=True)).sum(1))
        llr[:, k] = lse0 - lse1
    return llr


def _ber_closed_form(bps: int, ebno_db: float) -> float:
    """Exact uncoded BER of Gray BPSK / square M-QAM over AWGN (Cho & Yoon, IEEE TCOM 2002)."""
    gamma_b = 10 ** (ebno_db / 10)
    if bps == 1:
        return 0.5 * math.erfc(math.sqrt(gamma_b))
    m_pts = 1 << bps
    sqrt_m = 1 << (bps // 2)
    total = 0.0
    for k in range(1, bps // 2 + 1):
        p_k = 0.0
        for i in range(int((1 - 2.0**-k) * sqrt_m)):
            f = math.floor(i * 2 ** (k - 1) / sqrt_m)
            weight = (-1) ** f * (2 ** (k - 1) - math.floor(i * 2 ** (k - 1) / sqrt_m + 0.5))
            arg = (2 * i + 1) * math.sqrt(3 * bps * gamma_b / (2 * (m_pts - 1)))
            p_k += weight * math.erfc(arg)
        total += p_k / sqrt_m
    return total / (bps // 2)


def _random_y(c: Constellation, n: int, noise_var: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, c.num_points, (n,), generator=g)
    return add_awgn(c.points[idx], noise_var, g)


@pytest.mark.parametrize("name", ALL)
def test_unit_energy_and_3gpp_points(name):
    c = constellation(name)
    assert c.points.dtype == torch.complex64
    assert c.points.shape == (1 << c.bits_per_symbol,)
    assert abs(float((c.points.abs() ** 2).double().mean()) - 1.0) < 1e-6
    ref = _tgpp_points(c.bits_per_symbol)
    np.testing.assert_allclose(c.points.numpy(), ref, atol=1e-6)


def test_bpsk_qpsk_conventions():
    assert torch.equal(constellation("bpsk").points, torch.tensor([1 + 0j, -1 + 0j]))
    s = 1 / math.sqrt(2)
    expected = torch.tensor([s + 1j * s, s - 1j * s, -s + 1j * s, -s - 1j * s])
    torch.testing.assert_close(constellation("qpsk").points, expected.to(torch.complex64))


@pytest.mark.parametrize("name", ALL)
def test_gray_neighbours_differ_in_one_bit(name):
    c = constellation(name)
    pts = c.points.to(torch.complex128).numpy()
    dist = np.abs(pts[:, None] - pts[None, :])
    d_min = dist[dist > 1e-9].min()
    pairs = np.argwhere(np.abs(dist - d_min) < 1e-6)
    side = 2 if c.bits_per_symbol == 1 else 1 << (c.bits_per_symbol // 2)
    # A square grid of side L has 2 L (L - 1) neighbour pairs (each counted twice here).
    expected_pairs = 1 if c.bits_per_symbol == 1 else 2 * side * (side - 1)
    assert len(pairs) == 2 * expected_pairs
    for i, j in pairs:
        assert bin(int(i) ^ int(j)).count("1") == 1, (name, i, j)


@pytest.mark.parametrize("name", ALL)
def test_map_hard_decision_round_trip(name):
    c = constellation(name)
    g = torch.Generator().manual_seed(1)
    bits = torch.randint(0, 2, (3, 5, 40 * c.bits_per_symbol), generator=g, dtype=torch.uint8)
    x = c.map(bits)
    assert x.shape == (3, 5, 40) and x.dtype == torch.complex64
    assert torch.equal(c.hard_decision(x), bits)
    # Small noise (well inside the decision regions) does not change the decision either.
    y = add_awgn(x, 1e-4, g)
    assert torch.equal(c.hard_decision(y), bits)
    assert torch.equal(c.map(bits.bool()), x)
    assert torch.equal(c.map(bits.to(torch.int64)), x)


@pytest.mark.parametrize("name", ALL)
def test_hard_decision_is_maxlog_sign(name):
    c = constellation(name)
    y = _random_y(c, 4000, 0.3, seed=2)
    hard = c.hard_decision(y)
    llr = c.demap(y, 0.3, method="maxlog")
    assert torch.equal(hard, (llr < 0).to(torch.uint8))


# (modulation, Eb/N0 points in dB); every point has a closed-form BER >= 1e-4.
BER_CASES = [
    ("bpsk", [0.0, 3.0, 6.0, 8.0]),
    ("qpsk", [0.0, 3.0, 6.0, 8.0]),
    ("16qam", [0.0, 4.0, 8.0, 11.0]),
    ("64qam", [0.0, 5.0, 10.0, 14.0]),
]


@pytest.mark.parametrize(("name", "ebno_list"), BER_CASES)
def test_uncoded_ber_matches_closed_form(name, ebno_list):
    c = constellation(name)
    bps = c.bits_per_symbol
    g = torch.Generator().manual_seed(3)
    for ebno_db in ebno_list:
        theory = _ber_closed_form(bps, ebno_db)
        assert theory >= 1e-4
        # ~4000 errors: relative std about 1.6 %, far inside the 10 % tolerance.
        num_bits = int(min(max(4000 / theory, 4e5), 2.4e7)) // bps * bps
        n0 = float(noise_var_from_ebno_db(ebno_db, bps))
        errors, chunk = 0, (1 << 21) // bps * bps
        for start in range(0, num_bits, chunk):
            size = min(chunk, num_bits - start)
            bits = torch.randint(0, 2, (size,), generator=g, dtype=torch.uint8)
            y = add_awgn(c.map(bits), n0, g)
            errors += int((c.hard_decision(y) != bits).sum())
        ber = errors / num_bits
        assert abs(ber - theory) <= 0.1 * theory, (name, ebno_db, ber, theory)


@pytest.mark.parametrize("name", ALL)
def test_exact_llr_equals_brute_force(name):
    c = constellation(name)
    pts = _tgpp_points(c.bits_per_symbol)
    for k, noise_var in enumerate([0.01, 0.1, 1.0, 5.0]):
        y = _random_y(c, 500, noise_var, seed=10 + k)
        llr = c.demap(y, noise_var)
        assert llr.dtype == torch.float32 and llr.shape == (500 * c.bits_per_symbol,)
        ref = _brute_force_llr(y.numpy().astype(np.complex128), np.full(500, noise_var), pts)
        err = np.abs(llr.numpy().reshape(500, -1) - ref)
        assert np.all(err <= 1e-5 * np.maximum(1.0, np.abs(ref))), (name, noise_var, err.max())


@pytest.mark.parametrize("name", ["qpsk", "16qam", "256qam"])
def test_per_symbol_noise_var(name):
    """A per-symbol N0 (after equalization) gives each symbol the LLRs of its own N0."""
    c = constellation(name)
    bps = c.bits_per_symbol
    y = _random_y(c, 2 * 300, 0.2, seed=4).reshape(2, 300)
    nv = torch.linspace(0.02, 3.0, 600).reshape(2, 300)
    llr = c.demap(y, nv).reshape(2, 300, bps).double().numpy()
    ref = _brute_force_llr(
        y.reshape(-1).numpy().astype(np.complex128),
        nv.reshape(-1).double().numpy(),
        _tgpp_points(bps),
    ).reshape(2, 300, bps)
    assert np.all(np.abs(llr - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))
    # Per-batch [B, 1] broadcasts over the row.
    row_nv = torch.tensor([[0.1], [0.7]])
    per_row = c.demap(y, row_nv)
    torch.testing.assert_close(per_row[1], c.demap(y[1], 0.7))


def test_float64_input_gives_float64_llr():
    c = constellation("64qam")
    y = _random_y(c, 200, 0.05, seed=5)
    llr64 = c.demap(y.to(torch.complex128), 0.05)
    assert llr64.dtype == torch.float64
    torch.testing.assert_close(llr64.float(), c.demap(y, 0.05), rtol=1e-5, atol=1e-5)


def test_bpsk_llr_and_real_input():
    c = constellation("bpsk")
    y = torch.tensor([0.5 + 2j, -1.0 + 0j, 0.0 + 0j])
    torch.testing.assert_close(c.demap(y, 0.5), torch.tensor([4.0, -8.0, 0.0]))
    torch.testing.assert_close(c.demap(y.real, 0.5), torch.tensor([4.0, -8.0, 0.0]))
    torch.testing.assert_close(c.demap(y, 0.5, "maxlog"), c.demap(y, 0.5))
    assert torch.equal(c.hard_decision(y.real), torch.tensor([0, 1, 0], dtype=torch.uint8))


@pytest.mark.parametrize("name", ALL)
def test_maxlog_error_within_documented_bound(name):
    c = constellation(name)
    bound = math.log((1 << (c.bits_per_symbol // 2)) / 2) if c.bits_per_symbol > 1 else 0.0
    assert bound <= math.log(c.num_points / 2)  # tighter than the full-constellation bound
    worst = 0.0
    for k, noise_var in enumerate([0.01, 0.3, 2.0, 20.0]):
        y = _random_y(c, 3000, noise_var, seed=20 + k)
        diff = (c.demap(y, noise_var, "exact") - c.demap(y, noise_var, "maxlog")).abs()
        worst = max(worst, float(diff.max()))
    assert worst <= bound + 1e-4
    if c.num_points >= 16:
        # At large N0 the error approaches the bound: maxlog is really an approximation.
        assert worst >= 0.5 * bound
    else:
        assert worst <= 1e-4  # BPSK and QPSK: max-log is exact


def test_factory_names_and_cache():
    assert MODULATIONS == {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
    assert constellation("16QAM") is constellation(4)
    assert constellation("QPSK") is constellation("qpsk")
    assert Constellation("64-QAM").bits_per_symbol == 6
    for name, bps in MODULATIONS.items():
        assert Constellation(bps).name == name


def test_bad_input_raises():
    c = constellation("16qam")
    with pytest.raises(ValueError, match="multiple"):
        c.map(torch.zeros(6, dtype=torch.uint8))
    with pytest.raises(TypeError):
        c.map(torch.zeros(8))  # float bits are refused
    with pytest.raises(ValueError, match="0 and 1"):
        c.map(torch.full((8,), 2, dtype=torch.uint8))
    with pytest.raises(ValueError):
        Constellation("8psk")
    with pytest.raises(ValueError):
        Constellation(3)
    with pytest.raises(TypeError):
        Constellation(True)
    y = torch.zeros(4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="> 0"):
        c.demap(y, 0.0)
    with pytest.raises(ValueError):
        c.demap(y, -1.0)
    with pytest.raises(ValueError, match="method"):
        c.demap(y, 1.0, method="approx")
    with pytest.raises(TypeError):
        c.demap(torch.zeros(4), 1.0)  # QAM needs complex y
    with pytest.raises(ValueError, match="enlarge"):
        c.demap(y, torch.ones(3, 4))
    with pytest.raises(TypeError):
        c.demap(np.zeros(4, dtype=np.complex64), 1.0)


def test_large_256qam_demap_is_chunked_and_consistent():
    """256-QAM on more than one demapping chunk: results independent of the chunking."""
    c = constellation("256qam")
    y = _random_y(c, 70_000, 0.05, seed=6)
    full = c.demap(y, 0.05)
    part = c.demap(y[-1000:], 0.05)
    torch.testing.assert_close(full[-8000:], part)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu(name):
    c = constellation(name)
    g = torch.Generator().manual_seed(7)
    bits = torch.randint(0, 2, (4, 64 * c.bits_per_symbol), generator=g, dtype=torch.uint8)
    y = add_awgn(c.map(bits), 0.1, g)
    y_cuda = y.cuda()
    assert torch.equal(c.map(bits.cuda()).cpu(), c.map(bits))
    assert torch.equal(c.hard_decision(y_cuda).cpu(), c.hard_decision(y))
    for method in ("exact", "maxlog"):
        llr = c.demap(y_cuda, torch.full((4, 1), 0.1, device="cuda"), method)
        assert llr.device.type == "cuda"
        torch.testing.assert_close(llr.cpu(), c.demap(y, 0.1, method), rtol=1e-5, atol=1e-4)


def test_all_labels_covered():
    """Every bit pattern maps to a distinct point."""
    for name in ALL:
        c = constellation(name)
        bps = c.bits_per_symbol
        bits = torch.tensor(list(itertools.product([0, 1], repeat=bps)), dtype=torch.uint8)
        x = c.map(bits.reshape(-1)).reshape(-1)
        assert torch.equal(x, c.points)
