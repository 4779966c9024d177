"""ctypes binding of the native integer LM kernel (lib/lm_kernel.c), the CPU step of lm-small.

The shared library is built by both install routes: ``pip install`` (setup.py builds it as the
extension ``genjscc.core.source._lm_kernel``; ``make setup`` does this in the editable install)
and CMake (``libgenjscc_lm.so`` installed beside this file). It computes the same integers as
the torch step of :class:`~genjscc.core.source.quantized.QuantizedByteLM` (exact integer
arithmetic: no order or rounding to differ in), several times faster (docs/benchmarks.md,
bench:lm-exact).

``GENJSCC_LM_KERNEL`` picks the code: ``auto`` (default: AVX2 where the CPU has it, else
portable C), ``portable`` (the portable C loops on any CPU) or ``torch`` (no native kernel:
the torch step). When no library loads, :func:`available` is False, :func:`reason` says why,
and the model steps with torch.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import torch

from genjscc.core._native_lib import candidates, load_kernel
from genjscc.core.source import fixed_point as fp
from genjscc.errors import GenjsccError

__all__ = ["ISA_NAMES", "MAX_LAYERS", "NativeStep", "available", "gemm", "isa", "pack", "reason",
           "warn_fallback"]

_VERSION = 1  # GJ_LM_VERSION of the kernel this binding speaks to
MAX_LAYERS = 8  # GJ_LM_MAX_LAYERS
ISA_NAMES = {0: "portable", 1: "avx2"}
CHOICES = ("auto", "portable", "torch")
_ENV = "GENJSCC_LM_KERNEL"

log = logging.getLogger(__name__)

_p = ctypes.c_void_p


class Model(ctypes.Structure):
    """``gj_lm_model`` of lm_kernel.c (field for field)."""

    _fields_ = [
        ("layers", ctypes.c_int32),
        ("hidden", ctypes.c_int32),
        ("vocab", ctypes.c_int32),
        ("exp_size", ctypes.c_int32),
        ("input_table", _p),
        ("w_hh", _p * MAX_LAYERS),
        ("w_hh_mult", _p * MAX_LAYERS),
        ("w_ih", _p * MAX_LAYERS),
        ("w_ih_mult", _p * MAX_LAYERS),
        ("b_ih", _p * MAX_LAYERS),
        ("head", _p),
        ("head_mult", _p),
        ("head_bias", _p),
        ("sigmoid", _p),
        ("tanh_", _p),
        ("exp_", _p),
    ]


def _constants_agree() -> bool:
    """The C file hard-codes fixed_point's formats: refuse the kernel if they ever differ."""
    return (fp.GATE_FRAC, fp.OUT_FRAC, fp.LUT_RANGE, fp.LUT_SIZE, fp.CELL_LIMIT, fp.ACT_MAX,
            fp.MULT_SHIFT, fp.PRECISION) == (12, 15, 8, 1 << 16, 256 << 12, 127, 24, 24)


def _load() -> tuple[ctypes.CDLL | None, str]:
    choice = os.environ.get(_ENV, "auto") or "auto"
    if choice not in CHOICES:
        return None, (f"{_ENV}={choice!r} is not one of {', '.join(CHOICES)}: "
                      "the torch step is used")
    if choice == "torch":
        return None, f"{_ENV}=torch: the torch step is used"
    if not _constants_agree():
        return None, "lm_kernel.c's fixed-point constants differ from fixed_point.py"
    here = Path(__file__).resolve().parent
    lib, why = load_kernel(candidates(here, "_lm_kernel", "libgenjscc_lm.so"), "LM",
                           "gj_lm_version", _VERSION)
    if lib is not None:
        lib.gj_lm_best_isa.restype = ctypes.c_int
        lib.gj_lm_packed_size.restype = ctypes.c_int64
        lib.gj_lm_packed_size.argtypes = [ctypes.c_int64, ctypes.c_int64]
        lib.gj_lm_pack.restype = None
        lib.gj_lm_pack.argtypes = [_p, ctypes.c_int64, ctypes.c_int64, _p]
        lib.gj_lm_gemm.restype = ctypes.c_int
        lib.gj_lm_gemm.argtypes = [_p, ctypes.c_int64, ctypes.c_int64, _p, ctypes.c_int64, _p,
                                   ctypes.c_int32]
        lib.gj_lm_step.restype = ctypes.c_int
        lib.gj_lm_step.argtypes = [ctypes.POINTER(Model), _p, _p, ctypes.c_int64, _p, _p,
                                   ctypes.c_int32, ctypes.c_int32]
    return lib, why


_LIB, _REASON = _load()
_ISA = 0 if _LIB is None or os.environ.get(_ENV) == "portable" else int(_LIB.gj_lm_best_isa())


def available() -> bool:
    """Whether the native kernel loaded (and is not switched off by ``GENJSCC_LM_KERNEL``)."""
    return _LIB is not None


def reason() -> str:
    """Where the kernel was loaded from, or why it was not."""
    return _REASON


_warned = False


def warn_fallback() -> None:
    """Log, once per process, that the torch step stands in for a missing kernel (not when
    ``GENJSCC_LM_KERNEL=torch`` asked for it)."""
    global _warned
    if not _warned and os.environ.get(_ENV) != "torch":
        _warned = True
        log.warning("genjscc: %s; lm-small steps with torch on the CPU (the same integers, "
                    "several times slower)", _REASON)


def isa() -> str:
    """The code the kernel runs: ``avx2`` or ``portable``."""
    return ISA_NAMES[_ISA]


def _check(rc: int, what: str) -> None:
    if rc == -1:
        raise MemoryError(f"native LM kernel: out of memory in {what}")
    if rc != 0:
        raise GenjsccError(f"native LM kernel refused {what} (code {rc}): a state or input "
                           "out of range (hidden states in [-127, 127], cells within the "
                           "cell limit, inputs 0..256)")


def pack(weight: torch.Tensor) -> torch.Tensor:
    """int8 ``(n, k)`` CPU weights -> the kernel's packed layout (1-D int8: blocks of 8
    output rows, input pairs interleaved)."""
    if weight.dtype != torch.int8 or weight.ndim != 2 or weight.device.type != "cpu":
        raise ValueError("pack takes an int8 CPU tensor (n, k)")
    if _LIB is None:
        raise RuntimeError(_REASON)
    w = weight.contiguous()
    n, k = w.shape
    packed = torch.empty(int(_LIB.gj_lm_packed_size(n, k)), dtype=torch.int8)
    _LIB.gj_lm_pack(w.data_ptr(), n, k, packed.data_ptr())
    return packed


def gemm(x: torch.Tensor, packed: torch.Tensor, n: int, code: str | None = None
         ) -> torch.Tensor:
    """``x @ W.T`` as int32 for int8 ``x`` ``(rows, k)`` and ``packed = pack(W)`` (``W`` of
    ``n`` rows); ``code``: ``avx2`` or ``portable`` (default: the one :func:`isa` names)."""
    if _LIB is None:
        raise RuntimeError(_REASON)
    if x.dtype != torch.int8 or x.ndim != 2 or x.device.type != "cpu":
        raise ValueError("gemm takes an int8 CPU tensor (rows, k)")
    codes = {name: number for number, name in ISA_NAMES.items()}
    number = _ISA if code is None else codes[code]
    x = x.contiguous()
    out = torch.empty((x.shape[0], n), dtype=torch.int32)
    _check(_LIB.gj_lm_gemm(x.data_ptr(), x.shape[0], x.shape[1], packed.data_ptr(), n,
                           out.data_ptr(), number), "a product")
    return out


class NativeStep:
    """A :class:`~genjscc.core.source.quantized.QuantizedByteLM`'s tensors in the kernel's
    layout (packed weights, int64 / int32 tables), ready to step on the CPU."""

    def __init__(self, layers: int, hidden: int, t: dict[str, torch.Tensor]) -> None:
        if _LIB is None:
            raise RuntimeError(_REASON)
        if layers > MAX_LAYERS:
            raise ValueError(f"the native kernel steps at most {MAX_LAYERS} layers")
        keep: dict[str, torch.Tensor] = {}  # every buffer the struct points to stays alive

        def ptr(name: str, tensor: torch.Tensor) -> int:
            keep[name] = tensor.contiguous()
            return keep[name].data_ptr()

        model = Model(layers=layers, hidden=hidden, vocab=int(t["head"].shape[0]),
                      exp_size=int(t["exp"].numel()))
        model.input_table = ptr("input_table", t["input_table"].to(torch.int32))
        for layer in range(layers):
            model.w_hh[layer] = ptr(f"w_hh{layer}", pack(t[f"w_hh{layer}"]))
            model.w_hh_mult[layer] = ptr(f"w_hh{layer}.mult", t[f"w_hh{layer}.mult"])
            if layer:
                model.w_ih[layer] = ptr(f"w_ih{layer}", pack(t[f"w_ih{layer}"]))
                model.w_ih_mult[layer] = ptr(f"w_ih{layer}.mult", t[f"w_ih{layer}.mult"])
                model.b_ih[layer] = ptr(f"b_ih{layer}", t[f"b_ih{layer}"])
        model.head = ptr("head", pack(t["head"]))
        model.head_mult = ptr("head.mult", t["head.mult"])
        model.head_bias = ptr("head.bias", t["head.bias"])
        model.sigmoid = ptr("sigmoid", t["sigmoid"].to(torch.int32))
        model.tanh_ = ptr("tanh", t["tanh"].to(torch.int32))
        model.exp_ = ptr("exp", t["exp"])
        self._keep = keep
        self._model = model
        self._ref = ctypes.byref(model)
        self.vocab = model.vocab

    def step(self, state: torch.Tensor, inputs: torch.Tensor, threads: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """int64 CPU ``state (2, layers, B, H)`` and ``inputs (B,)`` -> new state, frequency
        table ``(B, vocab)`` int64."""
        state = state.contiguous()
        inputs = inputs.contiguous()
        batch = int(inputs.shape[0])
        new_state = torch.empty_like(state)
        freqs = torch.empty((batch, self.vocab), dtype=torch.int64)
        _check(_LIB.gj_lm_step(self._ref, state.data_ptr(), inputs.data_ptr(), batch,
                               new_state.data_ptr(), freqs.data_ptr(), threads, _ISA),
               "a step")
        return new_state, freqs
