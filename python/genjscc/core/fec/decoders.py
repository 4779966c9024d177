"""One factory for every channel decoder: ``make_decoder(name, code, num_iters, **options)``.

A decoder is a callable ``llr [..., n] -> bits [..., n]`` (uint8, on the input's device): it
takes the rate-recovered LLRs of a code (``code.rate_recover(...)``, aligned with the columns
of ``code.H``) and returns a hard estimate of the whole codeword. The information bits are
``bits[..., code.info_positions]``. LLR sign (docs/conventions.md): ``llr = ln P(b=0)/P(b=1)``,
so ``bit = (llr < 0)``.

Names (:func:`list_decoders`):

================================  =============================================================
``bp``                            sum-product (the ``bp`` check rule), flooding schedule
``minsum``                        min-sum, flooding
``normalized-minsum``             min-sum times ``scaling`` (option, default 0.75), flooding
``offset-minsum``                 ``max(min - offset, 0)`` (option ``offset``, default 0.5)
``<any of the above>-layered``    the same check rule with the row-layered schedule
``ldpc-cpp``                      the ``ldpc`` 2.4 C++ ``BpDecoder`` (CPU, one word at a time)
``none``                          no decoding: the hard decision ``llr < 0`` (uncoded reference)
``ecct``                          Error Correction Code Transformer (option ``model``: zoo name or
                                  ``.safetensors`` file; default the zoo's ``ecct-<code>``)
================================  =============================================================

The BP decoders are :class:`genjscc.core.fec.bp.BPDecoder`; ``options`` go to it
(``scaling``, ``offset``, ``early_stop``, ``llr_clip``, ``layers``, ``device``, ``backend``,
``num_threads``, ``osd_order``, and ``schedule="layered"`` as an alternative to the
``-layered`` suffix). ``osd_order`` (``None``: off; 0, 1 or 2) adds ordered-statistics
decoding (:mod:`genjscc.core.fec.osd`) of the words BP leaves with a nonzero syndrome
(BP-OSD), e.g. ``make_decoder("bp", code, num_iters=30, osd_order=2)``: for short codes,
where BP is far from maximum likelihood (docs/fec.md).
One name per algorithm, two implementations chosen by ``backend``:

================  ===========================================================================
``"auto"``        (default) CPU float32 inputs: the native kernel (lib/bp_kernel.c: batch-major
                  SIMD, per-word early stop, ``num_threads`` threads, default
                  ``torch.get_num_threads()``); CUDA or float64: torch. Without a built kernel
                  everything runs on torch (logged once).
``"native"``      the native kernel only (an error on CUDA inputs or when it is not built)
``"torch"``       the batched torch implementation on any device (CUDA, float64)
================  ===========================================================================

The two decode the same words: min-sum rules bit for bit, sum-product up to float rounding
(tests/test_bp_native.py). From the command line: ``genjscc ber ... -O backend=torch``.

``ldpc-cpp`` options: ``bp_method`` (``"product_sum"``, the default, or ``"minimum_sum"``),
``ms_scaling_factor`` (min-sum only, default 1.0), ``schedule`` (``"parallel"``, the default, or
``"serial"``), ``llr_clip`` (default 20). ``ldpc`` works with error probabilities, not LLRs:
each word is given as its hard decision ``r = (llr < 0)`` in ``received_vector`` mode with the
per-bit flip probabilities ``p = 1 / (1 + exp(|llr|))`` as the error channel, which is the same
channel information (its internal LLR is ``ln((1-p)/p) = |llr|`` relative to ``r``); it returns
the codeword estimate.

Adding a decoder (the ECCT package does this)::

    from genjscc.core.fec.decoders import register_decoder
    register_decoder("ecct", build_ecct_decoder)      # build(code, num_iters, **options)

or, without importing anything up front, a lazy entry ``DECODERS["ecct"] =
"genjscc.core.ecct.decoder:build_decoder"`` that is imported on first use.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from genjscc.core.fec.bp import CHECK_RULES, BPDecoder
from genjscc.core.fec.codes import Code

__all__ = [
    "DECODERS",
    "Decoder",
    "HardDecisionDecoder",
    "LdpcCppDecoder",
    "list_decoders",
    "make_decoder",
    "register_decoder",
]


class Decoder(Protocol):
    """What :func:`make_decoder` returns: ``llr float [..., n] -> bits uint8 [..., n]``."""

    def __call__(self, llr: torch.Tensor) -> torch.Tensor: ...


Builder = Callable[..., Decoder]
"""``builder(code, num_iters, **options) -> Decoder``."""


def _check_llr(llr: Any, n: int) -> torch.Tensor:
    if isinstance(llr, np.ndarray):
        llr = torch.from_numpy(llr)
    if not isinstance(llr, torch.Tensor):
        raise TypeError(f"llr must be a torch.Tensor, got {type(llr).__name__}")
    if llr.is_complex() or llr.dtype == torch.bool:
        raise TypeError(f"llr must be a real tensor, got dtype {llr.dtype}")
    if llr.ndim == 0 or llr.shape[-1] != n:
        raise ValueError(f"llr must have shape [..., n] with n = {n}, got {tuple(llr.shape)}")
    return llr


class HardDecisionDecoder:
    """The ``"none"`` decoder: bit-wise hard decision ``(llr < 0)``, no use of the code.

    NaN LLRs count as erasures and decide 0 (as a zero LLR does).
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __call__(self, llr: torch.Tensor) -> torch.Tensor:
        return (_check_llr(llr, self.n) < 0).to(torch.uint8)

    def __repr__(self) -> str:
        return f"HardDecisionDecoder(n={self.n})"


class LdpcCppDecoder:
    """The ``ldpc`` 2.4 C++ belief-propagation decoder behind the :class:`Decoder` interface.

    A CPU reference: the words of a batch are decoded one after the other (the C++ decoder
    takes one vector per call); inputs on another device are copied to the CPU and the bits
    come back on the input's device.

    Args:
        H: parity-check matrix (numpy 0/1 or scipy.sparse), ``(m, n)``.
        num_iters: maximum iterations (>= 1); the decoder stops early at a zero syndrome.
        bp_method: ``"product_sum"`` (sum-product) or ``"minimum_sum"``.
        ms_scaling_factor: min-sum normalisation (``"minimum_sum"`` only).
        schedule: ``"parallel"`` (flooding) or ``"serial"``.
        llr_clip: LLR magnitudes are clipped to this (and NaN set to 0) before conversion to
            probabilities, so that no probability underflows to 0.
    """

    def __init__(
        self,
        H: Any,
        num_iters: int = 50,
        bp_method: str = "product_sum",
        ms_scaling_factor: float = 1.0,
        schedule: str = "parallel",
        llr_clip: float = 20.0,
    ) -> None:
        try:
            from ldpc.bp_decoder import BpDecoder
        except ImportError as exc:  # pragma: no cover - ldpc is a dependency
            raise ImportError("the 'ldpc-cpp' decoder needs the ldpc package (pip install "
                              "ldpc==2.4.1)") from exc
        if bp_method not in ("product_sum", "minimum_sum"):
            raise ValueError(f"bp_method must be 'product_sum' or 'minimum_sum', got {bp_method!r}")
        if schedule not in ("parallel", "serial"):
            raise ValueError(f"schedule must be 'parallel' or 'serial', got {schedule!r}")
        if isinstance(num_iters, bool) or int(num_iters) != num_iters or num_iters < 1:
            raise ValueError(f"num_iters must be an integer >= 1 for ldpc-cpp, got {num_iters!r}")
        if not (math.isfinite(llr_clip) and llr_clip > 0):
            raise ValueError(f"llr_clip must be a finite positive number, got {llr_clip}")
        self.m, self.n = H.shape
        self.num_iters = int(num_iters)
        self.llr_clip = float(llr_clip)
        self._dec = BpDecoder(
            H,
            error_rate=0.1,  # replaced per word by update_channel_probs
            max_iter=self.num_iters,
            bp_method=bp_method,
            ms_scaling_factor=float(ms_scaling_factor),
            schedule=schedule,
            input_vector_type="received_vector",
        )

    def __call__(self, llr: torch.Tensor) -> torch.Tensor:
        llr = _check_llr(llr, self.n)
        x = llr.detach().to("cpu", torch.float64).reshape(-1, self.n).numpy()
        x = np.clip(np.nan_to_num(x, nan=0.0), -self.llr_clip, self.llr_clip)
        hard = (x < 0).astype(np.uint8)
        # P(received bit is wrong) = 1 / (1 + e^|llr|); never 0 thanks to the clip.
        flip_prob = 1.0 / (1.0 + np.exp(np.abs(x)))
        out = np.empty_like(hard)
        for i in range(hard.shape[0]):
            self._dec.update_channel_probs(flip_prob[i])
            out[i] = self._dec.decode(hard[i])
        bits = torch.from_numpy(out).reshape(llr.shape)
        return bits.to(llr.device)

    def __repr__(self) -> str:
        return f"LdpcCppDecoder(n={self.n}, m={self.m}, num_iters={self.num_iters})"


# ---------------------------------------------------------------------------------- registry

def _bp_builder(rule: str, schedule: str) -> Builder:
    def build(code: Code, num_iters: int = 50, **options: Any) -> Decoder:
        options.setdefault("schedule", schedule)
        return BPDecoder(code.H, check_rule=rule, num_iters=num_iters, **options)

    build.__doc__ = f"BPDecoder(code.H, check_rule={rule!r}, schedule={schedule!r}, ...)"
    return build


def _build_ldpc_cpp(code: Code, num_iters: int = 50, **options: Any) -> Decoder:
    return LdpcCppDecoder(code.H, num_iters=num_iters, **options)


def _build_none(code: Code, num_iters: int = 50, **options: Any) -> Decoder:
    if options:
        raise ValueError(f"the 'none' decoder takes no options, got {sorted(options)}")
    return HardDecisionDecoder(code.n)


DECODERS: dict[str, Builder | str] = {
    **{rule: _bp_builder(rule, "flooding") for rule in CHECK_RULES},
    **{f"{rule}-layered": _bp_builder(rule, "layered") for rule in CHECK_RULES},
    "ldpc-cpp": _build_ldpc_cpp,
    "none": _build_none,
    "ecct": "genjscc.core.ecct.decoder:build_decoder",
}
"""Decoder name -> builder ``(code, num_iters, **options) -> Decoder``, or a lazy
``"module:attribute"`` string naming such a builder (imported on first use)."""


def register_decoder(name: str, builder: Builder | str, *, overwrite: bool = False) -> None:
    """Add a decoder to :data:`DECODERS` under ``name`` (lower case, no spaces).

    Args:
        name: the name :func:`make_decoder` and ``genjscc ber --decoder`` accept.
        builder: ``builder(code, num_iters, **options) -> Decoder``, or ``"module:attr"``.
        overwrite: replace an existing entry instead of raising ``ValueError``.
    """
    if not isinstance(name, str) or not name or name != name.strip().lower() or " " in name:
        raise ValueError(f"decoder names are non-empty lower-case strings, got {name!r}")
    if not (callable(builder) or (isinstance(builder, str) and ":" in builder)):
        raise TypeError("builder must be a callable or a 'module:attribute' string")
    if name in DECODERS and not overwrite:
        raise ValueError(f"decoder {name!r} is already registered (pass overwrite=True)")
    DECODERS[name] = builder


def list_decoders() -> list[str]:
    """The registered decoder names, sorted."""
    return sorted(DECODERS)


def _resolve(name: str) -> Builder:
    entry = DECODERS[name]
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attr)
        DECODERS[name] = entry
    return entry


def make_decoder(name: str, code: Code, num_iters: int = 50, **options: Any) -> Decoder:
    """Build decoder ``name`` for ``code``.

    Args:
        name: one of :func:`list_decoders` (case-insensitive; ``_`` and ``-`` are the same).
        code: a code object with ``H`` and ``n`` (:func:`genjscc.core.fec.codes.get_code`).
        num_iters: maximum number of decoding iterations (ignored by ``"none"``).
        **options: passed to the decoder's builder (see the module docstring).

    Returns:
        A callable ``llr float [..., n] -> bits uint8 [..., n]``.

    Raises:
        ValueError: unknown name, or options the decoder refuses.
    """
    if not isinstance(name, str):
        raise TypeError(f"decoder name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {', '.join(list_decoders())}")
    try:
        return _resolve(key)(code, num_iters=num_iters, **options)
    except TypeError as exc:  # an unknown keyword option is the user's input error
        if "unexpected keyword" in str(exc):
            raise ValueError(f"decoder {key!r}: {exc}") from exc
        raise
