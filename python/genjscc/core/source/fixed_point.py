"""Integer arithmetic that gives the same bits on every machine: the coder's exact inference.

A range decoder reproduces the encoder's symbols only from bit-identical probability tables.
Floats computed by vectorized kernels are not bit-identical across CPUs (AVX2 / AVX-512 /
default kernels, MKL's per-vendor paths, thread counts, batch shapes) or devices, so the
models that code (lm-small) compute every number that feeds the table with integers:

* **Matrix products** take int8 operands (weights quantized per output row, activations in
  ``[-127, 127]``) and run as float32 GEMMs whose every partial sum is an integer of magnitude
  below ``2**24`` (``K * 127 * 127 < 2**24`` for ``K <= 1040``): float32 holds all such sums
  exactly, so any summation order, blocking, SIMD width, FMA use or device gives the same
  result. :func:`check_exact_matmul` proves at load time that the float32 math mode is IEEE
  (no TF32, no bfloat16 down-conversion), on the device at hand.
* **Rescaling** is integer: ``(acc * multiplier + 2**(shift-1)) >> shift`` in int64.
* **Nonlinearities** (sigmoid, tanh, exp) are lookup tables of integers stored in the
  weights file (computed once, at export), indexed by clamped fixed-point values: no libm.
* **The frequency table** comes straight from integer logits: ``exp`` by table, integer
  sums and a floor division, so its rows sum to exactly ``2**24`` with every entry >= 1.

Fixed-point formats (``Qn`` = integer scaled by ``2**n``): gate pre-activations and the LSTM
cell state are Q12, gate outputs Q15, hidden states int8 (``h = h_q / 127``), logits Q8
(natural-log units).
"""

from __future__ import annotations

import math

import torch

from genjscc.errors import GenjsccError

PRECISION = 24  # bits of the coder's probabilities: rows sum to 2**PRECISION
ACT_MAX = 127  # hidden states: h_q = round(h * 127), int8 range
GATE_FRAC = 12  # Q12 pre-activations and cell state
LUT_RANGE = 8  # the gate tables cover [-8, 8) (sigmoid and tanh are flat beyond)
LUT_SIZE = 2 * LUT_RANGE << GATE_FRAC  # 65536 entries
OUT_FRAC = 15  # Q15 gate outputs: sigmoid in [0, 2**15], tanh in [-2**15, 2**15]
CELL_LIMIT = 256 << GATE_FRAC  # |c| is clamped here (tanh is flat far before)
LOGIT_FRAC = 8  # Q8 logits
EXP_FRAC = 30  # exp table values: round(2**30 * exp(-d))
EXP_SPAN = 32  # nats: exp(-32) * 2**30 < 0.02, beyond it a symbol gets the floor
MULT_SHIFT = 24  # rescaling multipliers are Q24
MAX_EXACT_K = (1 << 24) // (ACT_MAX * ACT_MAX)  # 1040: the longest exact float32 dot product


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 quantization: ``weight ~ q * scale[:, None]``.

    Returns ``q`` (int8, entries in [-127, 127]) and ``scale`` (float64, > 0).
    """
    w = weight.detach().double()
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / ACT_MAX
    q = torch.round(w / scale[:, None]).clamp(-ACT_MAX, ACT_MAX).to(torch.int8)
    return q, scale


def multipliers(scale: torch.Tensor, out_frac: int) -> torch.Tensor:
    """Q24 integers ``M`` with ``acc * M >> 24`` = ``acc * scale / 127`` in ``Q{out_frac}``
    (``acc``: an int8-weights x int8-activations dot product)."""
    real = scale.double() * (1 << out_frac) / ACT_MAX
    return torch.round(real * (1 << MULT_SHIFT)).to(torch.int64)


def rescale(acc: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
    """``round(acc * multiplier / 2**24)`` in int64 (``acc`` exact integers, any dtype)."""
    return (acc.to(torch.int64) * multiplier + (1 << (MULT_SHIFT - 1))) >> MULT_SHIFT


def gate_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid and tanh of every Q12 value in [-8, 8) as Q15 integers (int32), built once at
    export with float64 libm and then shipped in the weights file (never recomputed)."""
    x = [(i - (LUT_RANGE << GATE_FRAC)) / (1 << GATE_FRAC) for i in range(LUT_SIZE)]
    one = 1 << OUT_FRAC
    sigmoid = [round(one / (1.0 + math.exp(-v))) for v in x]
    tanh = [round(one * math.tanh(v)) for v in x]
    return torch.tensor(sigmoid, dtype=torch.int32), torch.tensor(tanh, dtype=torch.int32)


def exp_table() -> torch.Tensor:
    """``round(2**30 * exp(-k / 256))`` for Q8 distances ``k`` in [0, 32 nats), int64."""
    size = EXP_SPAN << LOGIT_FRAC
    return torch.tensor([round((1 << EXP_FRAC) * math.exp(-k / (1 << LOGIT_FRAC)))
                         for k in range(size)], dtype=torch.int64)


def lookup(table: torch.Tensor, q12: torch.Tensor) -> torch.Tensor:
    """Gate table entries for Q12 pre-activations, clamped to the table's range."""
    index = (q12 + (LUT_RANGE << GATE_FRAC)).clamp_(0, LUT_SIZE - 1)
    return torch.take(table, index)


def frequencies(logits_q8: torch.Tensor, exp_lut: torch.Tensor) -> torch.Tensor:
    """Integer frequency table from Q8 logits ``(rows, V)``: int64, each row summing to
    ``2**24`` with every entry >= 1 (``floor(e * (2**24 - V) / sum(e)) + 1``, the remainder
    to the row's first largest entry)."""
    rows, vocab = logits_q8.shape
    distance = (logits_q8.amax(dim=1, keepdim=True) - logits_q8).clamp_(max=exp_lut.numel() - 1)
    e = exp_lut[distance]
    budget = (1 << PRECISION) - vocab
    q = torch.div(e * budget, e.sum(dim=1, keepdim=True), rounding_mode="floor")
    deficit = budget - q.sum(dim=1)
    q[torch.arange(rows, device=q.device), torch.argmax(q, dim=1)] += deficit
    return q + 1


def exact_matmul(x: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    """``x @ weight_t`` for integer-valued float32 operands (int8 range, K <= 1040): the
    exact integer result, as float32."""
    return torch.mm(x, weight_t)


def check_exact_matmul(k: int, device: torch.device | str = "cpu") -> None:
    """Prove that float32 GEMMs of int8-range integers are exact here, or raise.

    Worst-case operands (every product +-127 * 127, and mixed signs) through the very kernel
    the coder calls, against int64 arithmetic. Fails where a float32 math mode lowers the
    precision (TF32 on CUDA, oneDNN's bfloat16 fpmath mode via ONEDNN_DEFAULT_FPMATH_MODE).
    """
    if k > MAX_EXACT_K:
        raise GenjsccError(f"dot products of length {k} are not exact in float32 "
                           f"(at most {MAX_EXACT_K})")
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-ACT_MAX, ACT_MAX + 1, (48, k), generator=gen, dtype=torch.int64)
    b = torch.randint(-ACT_MAX, ACT_MAX + 1, (k, 40), generator=gen, dtype=torch.int64)
    a[0] = ACT_MAX
    b[:, 0] = ACT_MAX  # the largest sum: k * 127 * 127
    want = a @ b
    got = exact_matmul(a.float().to(device), b.float().to(device)).cpu()
    if not torch.equal(got.to(torch.int64), want):
        raise GenjsccError(
            f"float32 matrix products on {device} are not exact for integers (TF32 or a "
            "bfloat16 math mode is on: unset ONEDNN_DEFAULT_FPMATH_MODE, keep "
            "torch.backends.cuda.matmul.allow_tf32 False); exact LM coding cannot run here")


def fake_quantize_rows(weight: torch.Tensor) -> torch.Tensor:
    """Training view of :func:`quantize_rows`: the rounded weights forward, the identity
    backward (straight-through estimator), for quantization-aware training."""
    scale = weight.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / ACT_MAX
    rounded = torch.round(weight / scale).clamp(-ACT_MAX, ACT_MAX) * scale
    return weight + (rounded - weight).detach()


def fake_quantize_states(h: torch.Tensor) -> torch.Tensor:
    """Hidden states in [-1, 1] rounded to the int8 grid ``k / 127`` forward, identity
    backward."""
    return h + (torch.round(h * ACT_MAX) / ACT_MAX - h).detach()
