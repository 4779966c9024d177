"""Parity-check loaders, GF(2) algebra and systematic encoding of genjscc.core.fec.codes."""

from __future__ import annotations

import itertools
from importlib import resources

import numpy as np
import pytest
import torch

from genjscc.core.fec.codes import (
    LinearBlockCode,
    get_code,
    gf2_rank,
    gf2_row_reduce,
    list_codes,
    load_alist,
    load_dense,
    load_parity_check,
    systematic_generator,
)
from genjscc.core.fec.ldpc5g import NR5GLDPC

# name -> (rows of H, n, GF(2) rank), from data/codes/README.md
SHIPPED = {
    "BCH_N31_K16": (15, 31, 15),
    "BCH_N63_K36": (27, 63, 27),
    "BCH_N63_K45": (18, 63, 18),
    "BCH_N63_K51": (12, 63, 12),
    "POLAR_N64_K32": (32, 64, 32),
    "POLAR_N64_K48": (16, 64, 16),
    "POLAR_N128_K64": (64, 128, 64),
    "POLAR_N128_K86": (42, 128, 42),
    "POLAR_N128_K96": (32, 128, 32),
    "LDPC_N49_K24": (28, 49, 25),
    "LDPC_N121_K60": (66, 121, 61),
    "LDPC_N121_K70": (55, 121, 51),
    "LDPC_N121_K80": (44, 121, 41),
    "MACKAY_N96_K48": (48, 96, 48),
    "CCSDS_N128_K64": (64, 128, 64),
}

HAMMING_7_4 = np.array(
    [[1, 1, 0, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0, 1]], dtype=np.uint8
)


def gf2_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)) % 2


def test_list_codes_is_the_shipped_set_with_attribution():
    assert sorted(list_codes()) == sorted(SHIPPED)
    folder = resources.files("genjscc") / "data" / "codes"
    assert "yoniLc/ECCT" in (folder / "SOURCES.md").read_text()
    assert (folder / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_code_shape_rank_and_encoding(name):
    rows, n, rank = SHIPPED[name]
    h = load_parity_check(name)
    assert h.dtype == np.uint8 and h.shape == (rows, n)
    assert gf2_rank(h) == rank
    code = get_code(name.lower())  # names are case-insensitive
    k = int(name.rsplit("_K", 1)[1])
    assert (code.name, code.n, code.k, code.m) == (name, n, k, rows)
    assert code.k == n - rank and code.code_rate == pytest.approx(k / n)
    assert code.G.shape == (k, n) and gf2_rank(code.G) == k
    assert not gf2_matmul(code.G, h.T).any()
    assert np.array_equal(code.G[:, code.info_positions], np.eye(k, dtype=np.uint8))
    gen = torch.Generator().manual_seed(n * 1000 + k)
    info = torch.randint(0, 2, (64, k), generator=gen, dtype=torch.uint8)
    cw = code.encode(info)
    assert cw.dtype == torch.uint8 and cw.shape == (64, n)
    assert not gf2_matmul(cw.numpy(), h.T).any()  # H c = 0 for every codeword
    assert not code.syndrome(cw).any()
    assert torch.equal(cw[:, code.info_positions], info)  # systematic on info_positions


def test_hamming_code_exhaustive():
    code = LinearBlockCode(HAMMING_7_4, name="hamming")
    assert (code.n, code.k, code.m) == (7, 4, 3)
    # H = [A | I]: pivoting from the right leaves the leading columns as information bits.
    assert list(code.info_positions) == [0, 1, 2, 3]
    words = torch.tensor(list(itertools.product((0, 1), repeat=4)), dtype=torch.float32)
    cws = code.encode(words)
    assert cws.dtype == torch.float32
    assert len({tuple(c) for c in cws.int().tolist()}) == 16
    weights = cws.sum(dim=1)[1:]  # the nonzero codewords
    assert int(weights.min()) == 3  # Hamming distance 3
    assert not code.syndrome(cws).any()
    single_error = cws[5].clone()
    single_error[2] = 1 - single_error[2]
    assert torch.equal(code.syndrome(single_error), torch.as_tensor(HAMMING_7_4[:, 2]).float())


def test_encode_keeps_batch_shape_and_dtype():
    code = get_code("BCH_N31_K16")
    gen = torch.Generator().manual_seed(1)
    info = torch.randint(0, 2, (2, 3, 16), generator=gen).bool()
    cw = code.encode(info)
    assert cw.shape == (2, 3, 31) and cw.dtype == torch.bool
    assert torch.equal(cw.reshape(6, 31), code.encode(info.reshape(6, 16)))
    llr = torch.randn(4, 31)
    assert code.rate_recover(llr) is llr and code.e == code.n


def test_gf2_row_reduce_and_generator_on_dependent_rows():
    h = np.vstack([HAMMING_7_4, HAMMING_7_4[0] ^ HAMMING_7_4[1]])  # a redundant fourth row
    reduced, pivots = gf2_row_reduce(h)
    assert reduced.shape == (3, 7) and sorted(pivots) == [4, 5, 6]
    assert np.array_equal(reduced[:, pivots], np.eye(3, dtype=np.uint8))
    g, info = systematic_generator(h)
    assert g.shape == (4, 7) and list(info) == [0, 1, 2, 3]
    assert not gf2_matmul(g, h.T).any()
    assert gf2_rank(np.zeros((3, 5), dtype=np.uint8)) == 0
    assert gf2_rank(np.eye(9, dtype=np.uint8)) == 9


def test_generator_of_random_matrices():
    rng = np.random.default_rng(7)
    for m, n in [(5, 12), (12, 12), (20, 33), (40, 90)]:
        h = (rng.random((m, n)) < 0.3).astype(np.uint8)
        h[-1] = h[0] ^ h[1]  # force a dependency
        g, info = systematic_generator(h)
        r = gf2_rank(h)
        assert g.shape == (n - r, n) and gf2_rank(g) == n - r
        assert not gf2_matmul(g, h.T).any()
        assert np.array_equal(g[:, info], np.eye(n - r, dtype=np.uint8))


def test_file_loaders_and_paths(tmp_path):
    # alist with 0-padded index lists (as CCSDS_N128_K64 has) and a trailing space
    alist = (
        "7 3\n3 4\n2 2 2 3 1 1 1\n4 4 4\n"
        "1 2 0\n1 3 0\n2 3 0\n1 2 3\n1\n2\n3\n"
        "1 2 4 5 \n1 3 4 6\n2 3 4 7\n"
    )
    path = tmp_path / "ham.alist"
    path.write_text(alist)
    assert np.array_equal(load_alist(path), HAMMING_7_4)
    dense = tmp_path / "ham.txt"
    np.savetxt(dense, HAMMING_7_4, fmt="%d")
    assert np.array_equal(load_dense(dense), HAMMING_7_4)
    assert np.array_equal(load_parity_check(str(path)), HAMMING_7_4)
    code = get_code(dense)
    assert code.name == "ham" and (code.n, code.k) == (7, 4)
    for name in ("polar_n64_k32", "POLAR_N64_K32.txt", "Polar_N64_K32"):
        assert load_parity_check(name).shape == (32, 64)


def test_bad_files_and_names(tmp_path):
    bad_rows = tmp_path / "bad.alist"  # the row section disagrees with the column section
    bad_rows.write_text("3 2\n1 2\n1 1 1\n2 1\n1\n1\n2\n1 2\n2\n")
    with pytest.raises(ValueError, match="disagree"):
        load_alist(bad_rows)
    bad_weight = tmp_path / "w.alist"
    bad_weight.write_text("2 1\n1 2\n1 2\n2\n1\n1\n1 2\n")
    with pytest.raises(ValueError, match="weight"):
        load_alist(bad_weight)
    with pytest.raises(ValueError, match="alist"):
        load_alist(_write(tmp_path / "t.alist", "hello\n"))
    with pytest.raises(ValueError, match="0/1"):
        load_dense(_write(tmp_path / "d.txt", "0 1 2\n1 1 0\n"))
    with pytest.raises(ValueError, match=r"unknown code 'NOPE_N7_K4'.*BCH_N31_K16"):
        get_code("NOPE_N7_K4")
    with pytest.raises(ValueError, match="0 and 1"):
        LinearBlockCode(np.array([[1, 2, 0]]))
    with pytest.raises(ValueError, match="k = 0"):
        LinearBlockCode(np.eye(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="2-D array"):
        LinearBlockCode(np.ones(5, dtype=np.uint8))


def test_bad_encoder_input():
    code = get_code("LDPC_N49_K24")
    with pytest.raises(ValueError, match="last dimension 24"):
        code.encode(torch.zeros(3, 25))
    with pytest.raises(ValueError, match="only 0 and 1"):
        code.encode(torch.full((2, 24), 2.0))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        code.encode(np.zeros((2, 24)))
    with pytest.raises(ValueError, match="last dimension 49"):
        code.syndrome(torch.zeros(2, 48))
    with pytest.raises(ValueError, match="last dimension 49"):
        code.rate_recover(torch.zeros(2, 24))


def test_get_code_builds_5g_specs():
    code = get_code("5gnr:bg2:k=512:n=1024")
    assert isinstance(code, NR5GLDPC)
    assert (code.base_graph, code.k, code.e, code.code_rate) == (2, 512, 1024, 0.5)


def _write(path, text):
    path.write_text(text)
    return path


def test_every_code_object_is_a_code() -> None:
    from genjscc.core.fec.codes import Code
    from genjscc.core.sim import uncoded_code

    for code in (get_code("LDPC_N49_K24"), get_code("5gnr:bg2:k=512:e=1024"), uncoded_code(8)):
        assert isinstance(code, Code), code
    assert not isinstance(object(), Code)
