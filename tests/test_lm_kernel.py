"""The native integer LM kernel (lib/lm_kernel.c) against exact int64 arithmetic and the torch
step: products of random and extreme int8 values at odd sizes (AVX2 and portable code), whole
steps of lm-small and of a deeper model with odd widths, thread counts, bad states, crafted
weights files and the GENJSCC_LM_KERNEL switch. (tests/test_lm_exact.py runs its cross-kernel
matrix through the torch step, the AVX2 code and the portable code.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from genjscc.core.source import _lm_native, load_model
from genjscc.core.source import fixed_point as fp
from genjscc.core.source.quantized import (
    QuantizedByteLM,
    load_quantized_lm,
    quantize_small_lm,
    save_quantized_lm,
)
from genjscc.core.source.small import SmallByteLM, SmallLMConfig
from genjscc.core.threads import torch_threads
from genjscc.errors import GenjsccError

pytestmark = pytest.mark.skipif(not _lm_native.available(), reason=_lm_native.reason())

CODES = ["portable", *(["avx2"] if _lm_native.isa() == "avx2" else [])]


def random_states(model: QuantizedByteLM, batch: int, seed: int) -> torch.Tensor:
    """States anywhere in their ranges, the extremes included."""
    gen = torch.Generator().manual_seed(seed)
    state = model.initial_state(batch).clone()
    state[0] = torch.randint(-fp.ACT_MAX, fp.ACT_MAX + 1, state[0].shape, generator=gen)
    state[1] = torch.randint(-fp.CELL_LIMIT, fp.CELL_LIMIT + 1, state[1].shape, generator=gen)
    state[0, ..., 0] = fp.ACT_MAX
    state[0, ..., 1] = -fp.ACT_MAX
    state[1, ..., 0] = fp.CELL_LIMIT
    state[1, ..., 1] = -fp.CELL_LIMIT
    return state


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("rows,k,n", [(1, 1, 1), (3, 13, 7), (5, 768, 9), (9, 31, 17),
                                      (33, 768, 256)])
def test_products_equal_int64_arithmetic(code: str, rows: int, k: int, n: int) -> None:
    gen = torch.Generator().manual_seed(rows * 1000 + k)
    x = torch.randint(-128, 128, (rows, k), generator=gen, dtype=torch.int8)
    w = torch.randint(-128, 128, (n, k), generator=gen, dtype=torch.int8)
    x[0] = -128  # the largest products: (-128) * (-128), k of them
    w[0] = -128
    if n > 1:
        w[1] = 127
    got = _lm_native.gemm(x, _lm_native.pack(w), n, code)
    want = x.long() @ w.long().t()
    assert got.dtype == torch.int32 and torch.equal(got.long(), want)
    # and the float32 GEMM of the torch step agrees with both (k <= 1040)
    assert torch.equal(fp.exact_matmul(x.float(), w.t().float()).long(), want)


@pytest.fixture(scope="module")
def small() -> QuantizedByteLM:
    return load_model("small").model


@pytest.mark.parametrize("threads", [1, 2])
def test_lm_small_steps_equal_the_torch_step(small: QuantizedByteLM, threads: int) -> None:
    with torch_threads(threads), torch.inference_mode():
        for batch in (1, 5, 33):
            state = random_states(small, batch, batch)
            inputs = torch.randint(0, 257, (batch,), generator=torch.Generator().manual_seed(9))
            inputs[0] = 256  # begin-of-chunk
            for _ in range(3):  # a few steps: the states leave the random ones
                native = small.step(state, inputs)
                reference = small.torch_step(state, inputs)
                assert torch.equal(native[0], reference[0])
                assert torch.equal(native[1], reference[1])
                state, inputs = native[0], native[1].argmax(dim=1)


def test_deeper_model_with_odd_widths_equals_the_torch_step() -> None:
    """Two layers (the w_ih path), hidden 13 (odd products, gate rows not a multiple of 8)."""
    torch.manual_seed(0)
    model = quantize_small_lm(SmallByteLM(SmallLMConfig(hidden=13, embed=8, layers=2, cell="lstm")))
    with torch.inference_mode():
        for batch in (1, 4, 7):
            state = random_states(model, batch, batch)
            inputs = torch.arange(batch) * 37 % 257
            for threads in (1, 3):
                with torch_threads(threads):
                    native = model.step(state, inputs)
                reference = model.torch_step(state, inputs)
                assert torch.equal(native[0], reference[0])
                assert torch.equal(native[1], reference[1])


def test_states_and_inputs_out_of_range_are_refused(small: QuantizedByteLM) -> None:
    state = small.initial_state(2)
    bad = state.clone()
    bad[0, 0, 1, 5] = fp.ACT_MAX + 1
    with pytest.raises(GenjsccError, match="out of range"):
        small.step(bad, torch.tensor([1, 2]))
    bad = state.clone()
    bad[1, 0, 0, 0] = -fp.CELL_LIMIT - 1
    with pytest.raises(GenjsccError, match="out of range"):
        small.step(bad, torch.tensor([1, 2]))
    with pytest.raises(GenjsccError, match="out of range"):
        small.step(state, torch.tensor([1, 257]))


@pytest.mark.parametrize("name,value,match", [
    ("tanh", 1 << 16, "outside"), ("exp", -1, "outside"), ("head.mult", 1 << 40, "outside"),
    ("head", -128, "outside"), ("initial_state", 1 << 30, "initial_state")])
def test_weights_files_out_of_the_arithmetic_bounds_are_refused(tmp_path, name: str,
                                                                value: int, match: str) -> None:
    torch.manual_seed(1)
    path = tmp_path / "lm.safetensors"
    config = SmallLMConfig(hidden=8, embed=4, cell="lstm")
    save_quantized_lm(quantize_small_lm(SmallByteLM(config)), path)
    load_quantized_lm(path)  # the well-made file loads
    tensors = load_file(str(path))
    tensors[name].view(-1)[0] = value
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(GenjsccError, match=match):
        load_quantized_lm(path)


@pytest.mark.parametrize("choice,expect", [("torch", "torch step is used"),
                                           ("portable", "portable"), ("bogus", "not one of")])
def test_kernel_switch(choice: str, expect: str) -> None:
    code = ("from genjscc.core.source import _lm_native as n; "
            "print(n.isa() if n.available() else n.reason())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "GENJSCC_LM_KERNEL": choice}, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert expect in done.stdout
