"""The native BP kernel (lib/bp_kernel.c) against the torch decoders on the same LLRs: same
block errors, same words, same iterations; threads, lane widths, batch shapes; the backend
option and the fallback when the kernel is missing. (tests/test_bp.py runs all its tests on
both backends too.)"""

from __future__ import annotations

import functools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from genjscc.core.fec import _native
from genjscc.core.fec.bp import CHECK_RULES, SCHEDULES, BPDecoder
from genjscc.core.fec.codes import get_code, load_parity_check, systematic_generator
from genjscc.core.fec.decoders import make_decoder

pytestmark = pytest.mark.skipif(not _native.available(), reason=_native.reason())


@functools.lru_cache
def _words(name: str, ebno_db: float, words: int, seed: int):
    """(H, codewords, LLRs): BPSK over real AWGN, random codewords."""
    h = load_parity_check(name)
    g, _ = systematic_generator(h)
    rng = np.random.default_rng(seed)
    cw = ((rng.integers(0, 2, (words, g.shape[0])) @ g) % 2).astype(np.uint8)
    rate = g.shape[0] / h.shape[1]
    sigma2 = 1.0 / (2.0 * rate * 10 ** (ebno_db / 10.0))
    y = 1.0 - 2.0 * cw + math.sqrt(sigma2) * rng.standard_normal(cw.shape)
    return h, cw, torch.from_numpy((2.0 * y / sigma2).astype(np.float32))


def _both(h, llr, **kwargs):
    torch_res = BPDecoder(h, backend="torch", **kwargs).decode(llr)
    native_res = BPDecoder(h, backend="native", num_threads=1, **kwargs).decode(llr)
    return torch_res, native_res


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("rule", CHECK_RULES)
def test_same_block_errors_as_torch_on_the_same_llrs(rule, schedule):
    """LDPC(49,24) at 3 dB, 3000 words (~300 block errors): the same words fail. Min-sum
    rules are exact (same float operations); sum-product runs in another domain (ratios,
    not phi()) and may end differently only on words that fail in both or nearly fail."""
    h, cw, llr = _words("LDPC_N49_K24", 3.0, 3000, seed=1)
    ref, got = _both(h, llr, check_rule=rule, schedule=schedule, num_iters=50)
    sent = torch.from_numpy(cw)
    fail_ref, fail_got = (ref.bits != sent).any(1), (got.bits != sent).any(1)
    assert 200 < int(fail_ref.sum()) < 600  # enough errors for the comparison to mean something
    both_ok = ref.syndrome_ok & got.syndrome_ok
    assert torch.equal(ref.bits[both_ok], got.bits[both_ok])
    if rule == "bp":
        assert abs(int(fail_ref.sum()) - int(fail_got.sum())) <= 5
        assert int((fail_ref != fail_got).sum()) <= 10
        assert (ref.num_iters == got.num_iters).float().mean() > 0.99
        # posterior LLRs agree where they are not saturated (same words, same iterations);
        # messages near +-llr_clip saturate differently, so the gap grows with iterations
        same = both_ok & (ref.num_iters == got.num_iters)
        close = (ref.llr.abs() < 15) & (got.llr.abs() < 15) & same[:, None]
        gap = (ref.llr - got.llr).abs()
        assert gap[close].quantile(0.99) < 0.01
        assert gap[close & (ref.num_iters <= 3)[:, None]].max() < 0.05
    else:
        assert torch.equal(fail_ref, fail_got)
        assert torch.equal(ref.num_iters, got.num_iters)
        assert torch.equal(ref.syndrome_ok, got.syndrome_ok)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_5g_code_with_punctured_and_filler_bits(schedule):
    """5G NR BG2 (K=256, E=512): punctured LLRs are exactly 0, fillers +clip."""
    code = get_code("5gnr:bg2:k=256:e=512")
    gen = torch.Generator().manual_seed(3)
    info = torch.randint(0, 2, (400, code.k), generator=gen)
    sent = code.encode(info)  # [400, e] rate-matched bits
    ebno_db, rate = 1.5, code.k / code.e
    sigma2 = 1.0 / (2.0 * rate * 10 ** (ebno_db / 10.0))
    y = 1.0 - 2.0 * sent.float() + math.sqrt(sigma2) * torch.randn(sent.shape, generator=gen)
    llr = code.rate_recover(2.0 * y / sigma2)
    ref, got = _both(code.H, llr, check_rule="bp", schedule=schedule, num_iters=20)
    info_ref = ref.bits[:, code.info_positions] != info
    info_got = got.bits[:, code.info_positions] != info
    errors = int(info_ref.any(1).sum()), int(info_got.any(1).sum())
    assert 20 < errors[0] < 300, errors
    assert abs(errors[0] - errors[1]) <= max(3, 0.05 * errors[0]), errors
    both_ok = ref.syndrome_ok & got.syndrome_ok
    assert torch.equal(ref.bits[both_ok], got.bits[both_ok])


def test_threads_lanes_and_batching_do_not_change_a_word():
    """Each word is decoded on its own: 1 or 2 threads, 4/8/16 lanes, any batch split."""
    h, _, llr = _words("LDPC_N49_K24", 2.5, 700, seed=2)
    base = BPDecoder(h, backend="native", num_threads=1)
    ref = base.decode(llr)
    two = BPDecoder(h, backend="native", num_threads=2).decode(llr)
    assert torch.equal(two.llr, ref.llr) and torch.equal(two.num_iters, ref.num_iters)
    native = base._native()
    for lanes in (4, 8, 16):
        post, bits, iters, ok = native.decode(llr, num_threads=1, lanes=lanes)
        assert torch.equal(post, ref.llr) and torch.equal(iters, ref.num_iters), lanes
        assert torch.equal(bits, ref.bits) and torch.equal(ok, ref.syndrome_ok)
    for i in (0, 1, 333):  # one word at a time, as the ldpc_decoder block decodes
        one = base.decode(llr[i])
        assert torch.equal(one.llr, ref.llr[i]) and int(one.num_iters) == int(ref.num_iters[i])
    parts = [base.decode(llr[a:b]).llr for a, b in ((0, 3), (3, 100), (100, 700))]
    assert torch.equal(torch.cat(parts), ref.llr)


def test_backend_choice_and_errors():
    h, _, llr = _words("LDPC_N49_K24", 3.0, 64, seed=4)
    assert BPDecoder(h).uses_native("cpu")
    assert not BPDecoder(h, backend="torch").uses_native("cpu")
    assert not BPDecoder(h).uses_native("cuda")  # CUDA inputs go to torch
    assert not BPDecoder(h, dtype=torch.float64).uses_native("cpu")  # so does float64
    with pytest.raises(ValueError, match="float32"):
        BPDecoder(h, backend="native", dtype=torch.float64)
    with pytest.raises(ValueError, match="CPU"):
        BPDecoder(h, backend="native").uses_native("cuda")
    with pytest.raises(ValueError, match="backend"):
        BPDecoder(h, backend="cpp")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_threads"):
            BPDecoder(h, num_threads=bad)
    # the factory passes the options on: same names, one more option
    code = get_code("LDPC_N49_K24")
    dec = make_decoder("bp-layered", code, num_iters=10, backend="torch")
    assert dec.backend == "torch" and dec.schedule == "layered"
    native = make_decoder("normalized-minsum", code, num_iters=10, backend="native")
    assert torch.equal(native(llr), dec.__class__(code.H, check_rule="normalized-minsum",
                                                   num_iters=10, schedule="flooding",
                                                   backend="torch")(llr))
    with pytest.raises(ValueError, match="float32 CPU"):
        native._native().decode(llr.double())


FALLBACK = """
import logging, torch
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
from genjscc.core.fec import _native
from genjscc.core.fec.bp import BPDecoder
assert not _native.available()
dec = BPDecoder([[1, 1, 0], [0, 1, 1]], check_rule="minsum")
res = dec.decode(torch.tensor([[2.0, -0.5, 3.0]] * 3))
assert res.bits.tolist() == [[0, 0, 0]] * 3
dec.decode(torch.zeros(2, 3))  # logged once, not per call
try:
    BPDecoder([[1, 1]], backend="native")
except RuntimeError as exc:
    print("native refused:", exc)
"""


def test_missing_kernel_falls_back_to_torch_with_one_log_line(tmp_path):
    env = {"GENJSCC_BP_KERNEL": str(tmp_path / "missing.so"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("falls back to the torch decoders") == 1, result.stderr
    assert "missing.so" in result.stderr
    assert "native refused:" in result.stdout and "missing.so" in result.stdout
