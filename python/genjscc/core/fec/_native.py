"""ctypes binding of the native BP kernel (lib/bp_kernel.c), the CPU backend of BPDecoder.

The shared library is built by both install routes: ``pip install`` (setup.py builds it as the
extension ``genjscc.core.fec._bp_kernel``; ``make setup`` does this in the editable install) and
CMake (``libgenjscc_bp.so`` installed beside this file). ``GENJSCC_BP_KERNEL=/path/to/lib.so``
loads another build. When no library loads, :func:`available` is False, :func:`reason` says
why, and ``BPDecoder(backend="auto")`` uses the torch decoders (logging it once).
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import numpy as np
import torch

from genjscc.core._native_lib import candidates, load_kernel

__all__ = ["RULES", "SCHEDULES", "NativeCode", "available", "reason"]

log = logging.getLogger(__name__)

RULES = {"bp": 0, "minsum": 1, "normalized-minsum": 2, "offset-minsum": 3}
SCHEDULES = {"flooding": 0, "layered": 1}
_VERSION = 3  # GJ_BP_VERSION of the kernel this binding speaks to

_i32p = ctypes.POINTER(ctypes.c_int32)


class _Code(ctypes.Structure):
    """``gj_bp_code`` of bp_kernel.c (field for field)."""

    _fields_ = [
        ("n", ctypes.c_int32),
        ("num_checks", ctypes.c_int32),
        ("num_edges", ctypes.c_int32),
        ("max_check_degree", ctypes.c_int32),
        ("chk_ptr", _i32p),
        ("chk_var", _i32p),
        ("var_ptr", _i32p),
        ("var_edge", _i32p),
        ("schedule", ctypes.c_int32),
        ("rule", ctypes.c_int32),
        ("num_iters", ctypes.c_int32),
        ("early_stop", ctypes.c_int32),
        ("scaling", ctypes.c_float),
        ("offset", ctypes.c_float),
        ("llr_clip", ctypes.c_float),
    ]


def _load() -> tuple[ctypes.CDLL | None, str]:
    override = os.environ.get("GENJSCC_BP_KERNEL")
    paths = [Path(override)] if override else \
        candidates(Path(__file__).resolve().parent, "_bp_kernel", "libgenjscc_bp.so")
    lib, why = load_kernel(paths, "BP", "gj_bp_version", _VERSION)
    if lib is not None:
        lib.gj_bp_decode.restype = ctypes.c_int
        lib.gj_bp_decode.argtypes = [ctypes.POINTER(_Code), ctypes.c_void_p, ctypes.c_int64,
                                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32]
    return lib, why


_LIB, _REASON = _load()
_warned = False


def available() -> bool:
    """Whether the native kernel loaded."""
    return _LIB is not None


def reason() -> str:
    """Where the kernel was loaded from, or why it was not."""
    return _REASON


def warn_fallback() -> None:
    """Log, once per process, that the torch decoders stand in for the missing kernel."""
    global _warned
    if not _warned:
        _warned = True
        log.warning("genjscc: %s; BP decoding on the CPU falls back to the torch decoders "
                    "(several times slower)", _REASON)


def _addr(a: np.ndarray) -> int:
    """Data address of a numpy array (cheaper than ``a.ctypes.data``)."""
    return a.__array_interface__["data"][0]


def _i32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


class NativeCode:
    """A Tanner graph and decoder settings in the kernel's layout, ready to decode.

    Args:
        n: code length.
        check_edges: list of int arrays, the variables of each non-empty check, in the order
            the checks are processed (layered: layer after layer).
        schedule, rule: keys of :data:`SCHEDULES` and :data:`RULES`.
        num_iters, early_stop, scaling, offset, llr_clip: as
            :class:`genjscc.core.fec.bp.BPDecoder`.
    """

    def __init__(self, n: int, check_edges: list[np.ndarray], schedule: str, rule: str,
                 num_iters: int, early_stop: bool, scaling: float, offset: float,
                 llr_clip: float):
        if _LIB is None:
            raise RuntimeError(_REASON)
        degrees = np.array([len(c) for c in check_edges], dtype=np.int64)
        self._chk_ptr = _i32(np.concatenate([[0], np.cumsum(degrees)]))
        self._chk_var = _i32(np.concatenate(check_edges))
        # every variable's edges, in processing (= check) order: the flooding variable sums
        order = np.argsort(self._chk_var, kind="stable")
        counts = np.bincount(self._chk_var, minlength=n)
        self._var_ptr = _i32(np.concatenate([[0], np.cumsum(counts)]))
        self._var_edge = _i32(order)
        self.n, self.num_edges = int(n), int(self._chk_var.size)

        def ptr(a: np.ndarray):
            return a.ctypes.data_as(_i32p)

        self._code = _Code(
            n=self.n, num_checks=len(check_edges), num_edges=self.num_edges,
            max_check_degree=int(degrees.max()), chk_ptr=ptr(self._chk_ptr),
            chk_var=ptr(self._chk_var), var_ptr=ptr(self._var_ptr),
            var_edge=ptr(self._var_edge), schedule=SCHEDULES[schedule], rule=RULES[rule],
            num_iters=int(num_iters), early_stop=int(bool(early_stop)), scaling=scaling,
            offset=offset, llr_clip=llr_clip)
        self._code_ref = ctypes.byref(self._code)

    def decode_arrays(self, llr: torch.Tensor, batch_shape: tuple, num_threads: int):
        """The fast path of ``BPDecoder.decode``: float32 CPU ``llr [*batch_shape, n]`` ->
        ``(post, bits, iters, syndrome_ok, largest iteration count)`` shaped like it (numpy
        buffers, a few us per call less than torch ones for single words)."""
        x = np.ascontiguousarray(llr.numpy())
        post = np.empty(x.shape, dtype=np.float32)
        bits = np.empty(x.shape, dtype=np.uint8)
        iters = np.empty(batch_shape, dtype=np.int32)
        ok = np.empty(batch_shape, dtype=np.bool_)
        batch = iters.size
        rc = _LIB.gj_bp_decode(self._code_ref, _addr(x), batch, _addr(post), _addr(bits),
                               _addr(iters), _addr(ok), int(num_threads), 0)
        if rc == -1:
            raise MemoryError("native BP kernel: out of memory")
        if rc != 0:
            raise RuntimeError(f"native BP kernel failed (code {rc})")
        most = int(iters.max()) if batch else 0
        return (torch.from_numpy(post), torch.from_numpy(bits), torch.from_numpy(iters),
                torch.from_numpy(ok), most)

    def decode(self, llr: torch.Tensor, num_threads: int = 1, lanes: int = 0):
        """``llr`` float32 CPU ``[batch, n]`` -> (posterior LLRs ``[batch, n]`` float32, hard
        bits uint8 ``[batch, n]``, iterations int32 ``[batch]``, zero syndrome bool
        ``[batch]``). ``lanes``: words per thread at once (4, 8, 16; 0: the CPU's vector width)."""
        if llr.dtype != torch.float32 or llr.device.type != "cpu" or llr.ndim != 2:
            raise ValueError("NativeCode.decode takes a float32 CPU tensor [batch, n]")
        if llr.shape[1] != self.n:
            raise ValueError(f"llr must have n = {self.n} columns, got {llr.shape[1]}")
        x = llr.contiguous()
        batch = x.shape[0]
        post = torch.empty_like(x)
        bits = torch.empty(x.shape, dtype=torch.uint8)
        iters = torch.empty(batch, dtype=torch.int32)
        ok = torch.empty(batch, dtype=torch.uint8)
        rc = _LIB.gj_bp_decode(ctypes.byref(self._code), x.data_ptr(), batch, post.data_ptr(),
                               bits.data_ptr(), iters.data_ptr(), ok.data_ptr(),
                               int(num_threads), int(lanes))
        if rc == -1:
            raise MemoryError("native BP kernel: out of memory")
        if rc != 0:
            raise RuntimeError(f"native BP kernel failed (code {rc})")
        return post, bits, iters, ok.bool()
