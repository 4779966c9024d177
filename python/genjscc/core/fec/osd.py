"""Ordered-statistics decoding (OSD, Fossorier & Lin 1995) of binary linear codes.

OSD of order ``w`` finds, among a set of codewords built from the most reliable bits of a
word, the one closest to the received LLRs:

1. Order the ``n`` positions by reliability ``|llr|``. The *most reliable basis* (MRB) is the
   set of the ``k`` most reliable positions that are linearly independent (an information
   set); the other ``n - k`` positions (the least reliable) follow from them. With a
   parity-check matrix this is one GF(2) elimination of H with its columns sorted by
   reliability, pivots taken from the least reliable columns first
   (:func:`genjscc.core.fec.codes.gf2_row_reduce` pivots from the right): the pivot columns
   are the dependent positions, the others the MRB (by matroid duality, the same MRB that
   Fossorier's greedy elimination of G finds).
2. Order 0: the hard decision on the MRB, re-encoded. Order ``w``: also every word with
   ``1..w`` of the MRB bits flipped, re-encoded.
3. Keep the candidate of least *discrepancy* ``sum_{i: c_i != hard_i} |llr_i|`` (the
   maximum-likelihood metric for independent bits: ``-ln P(y|c)`` up to a constant).

Every output is a codeword of H. Positions with LLR 0 (punctured or never-sent bits) are the
least reliable and end up among the dependent positions; known bits with a very large LLR
(5G NR filler bits, :data:`~genjscc.core.fec.ldpc5g.FILLER_LLR`) are the most reliable, sit in
the MRB and are never flipped in the chosen word (a flip costs their whole LLR).

The order-1 and order-2 discrepancies of all candidates come from one matrix product each:
with ``P`` (``k x (n-k)``, row ``i``: the dependent bits that flipping MRB bit ``i`` changes),
``s`` the disagreement of the order-0 word with the hard decision on the dependent positions
and ``a = |llr| (1 - 2 s)`` there, flipping MRB bits ``i`` and ``j`` costs
``|llr_i| + |llr_j| + (sum|llr| - (Pi a Pi^T)_ij) / 2`` with ``Pi = 1 - 2 P``. Cost per word:
the elimination (``O(n)`` numpy row operations on the bit-packed H) plus a ``k x (n-k) x k``
product for order 2: about 1 ms for LDPC(49,24), 10-50 ms for the 5G NR header codes of the
burst OFDM PHY (416 and 1040 columns; docs/fec.md).

LLR sign (docs/conventions.md): ``llr = ln P(b=0)/P(b=1)``, positive means 0; the hard
decision is ``b = (llr < 0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genjscc.core.fec.codes import _as_binary_matrix, gf2_row_reduce

__all__ = ["OSD_ORDERS", "osd_decode"]

OSD_ORDERS = (0, 1, 2)
"""Supported OSD orders (order 3 costs ``k^3 (n-k)`` per word: not offered)."""


def _check_order(order: Any) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) \
            or int(order) not in OSD_ORDERS:
        raise ValueError(f"OSD order must be one of {OSD_ORDERS}, got {order!r}")
    return int(order)


def _check_llr(llr: Any, n: int) -> np.ndarray:
    if isinstance(llr, torch.Tensor):
        if llr.is_complex() or llr.dtype == torch.bool:
            raise TypeError(f"llr must be real LLRs, got dtype {llr.dtype}")
        llr = llr.detach().cpu().numpy()
    if not isinstance(llr, np.ndarray):
        raise TypeError(f"llr must be a numpy array or torch.Tensor, got {type(llr).__name__}")
    if not (np.issubdtype(llr.dtype, np.floating) or np.issubdtype(llr.dtype, np.integer)):
        raise TypeError(f"llr must be real LLRs (float or integer), got dtype {llr.dtype}")
    if llr.ndim == 0 or llr.shape[-1] != n:
        raise ValueError(f"llr must have shape [..., n] with n = {n} (columns of H), "
                         f"got {llr.shape}")
    x = llr.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("llr holds NaN or +-inf: OSD needs finite LLRs (give erasures 0 and "
                         "known bits a large finite LLR, as rate_recover does)")
    return x


def osd_decode(H: Any, llr: Any, order: int = 2) -> np.ndarray:
    """Ordered-statistics decoding of ``llr [..., n]`` with the code of ``H`` (module docstring).

    Args:
        H: parity-check matrix ``(m, n)``, 0/1 (numpy, torch or scipy.sparse); redundant rows
            are fine.
        llr: float ``[..., n]`` LLRs ``ln P(b=0)/P(b=1)`` aligned with the columns of ``H``
            (numpy or torch, finite: 0 for an erasure, a large value for a known bit).
        order: 0, 1 or 2: the most MRB bits flipped in a candidate.

    Returns:
        uint8 ``[..., n]``: for each word a codeword of ``H`` (``H c = 0 mod 2``), the
        candidate of least discrepancy ``sum_{c_i != (llr_i < 0)} |llr_i|``; ties go to the
        lower order, then to the first flip position in reliability order.

    Raises:
        ValueError: ``H`` not a binary matrix, ``llr`` of the wrong last dimension, NaN or
            infinite LLRs, or an order not in :data:`OSD_ORDERS`.
        TypeError: ``llr`` not a real array.
    """
    order = _check_order(order)
    if hasattr(H, "toarray") and not isinstance(H, np.ndarray):  # scipy.sparse
        H = H.toarray()
    h = _as_binary_matrix(H)
    x = _check_llr(llr, h.shape[1])
    words = x.reshape(-1, h.shape[1])
    out = np.empty(words.shape, dtype=np.uint8)
    for i, word in enumerate(words):
        out[i] = _osd_word(h, word, order)
    return out.reshape(x.shape)


def _osd_word(h: np.ndarray, llr: np.ndarray, order: int) -> np.ndarray:
    """One word: the least-discrepancy codeword of order ``order`` (module docstring)."""
    n = h.shape[1]
    # Most reliable first, so that gf2_row_reduce (pivots from the right) pivots on the least
    # reliable columns; a stable sort keeps ties (e.g. the zeros of punctured bits) in order.
    perm = np.argsort(-np.abs(llr), kind="stable")
    reduced, pivots = gf2_row_reduce(h[:, perm])
    dep = np.asarray(pivots, dtype=np.int64)  # permuted positions of the dependent bits
    mrb = np.setdiff1d(np.arange(n), dep)  # permuted positions of the MRB, most reliable first
    y = llr[perm]
    hard = (y < 0).astype(np.uint8)
    w = np.abs(y)
    p = reduced[:, mrb].T  # [k, n-k]: dependent bits changed by flipping each MRB bit
    base = (p.astype(np.int64).T @ hard[mrb]) % 2  # order-0 dependent bits
    flips = _best_flips(p, w[mrb], w[dep], (base != hard[dep]), order)
    u = hard[mrb].copy()
    u[list(flips)] ^= 1
    cw_perm = np.empty(n, dtype=np.uint8)
    cw_perm[mrb] = u
    cw_perm[dep] = (p.astype(np.int64).T @ u) % 2
    cw = np.empty(n, dtype=np.uint8)
    cw[perm] = cw_perm
    return cw


def _best_flips(p: np.ndarray, w_mrb: np.ndarray, w_dep: np.ndarray, s: np.ndarray,
                order: int) -> tuple[int, ...]:
    """MRB indices to flip (at most ``order``) for the least discrepancy.

    ``p`` ``[k, n-k]``; ``w_*`` the reliabilities; ``s`` the order-0 word's disagreement with
    the hard decision on the dependent positions.
    """
    total = float(w_dep.sum())
    best_cost, best = float(np.dot(w_dep, s)), ()
    if order == 0 or p.shape[0] == 0:
        return best
    pm = 1.0 - 2.0 * p.astype(np.float64)  # [k, n-k], +-1
    a = w_dep * (1.0 - 2.0 * s)  # signed dependent reliabilities of the order-0 word
    pa = pm * a  # [k, n-k]
    cost1 = w_mrb + 0.5 * (total - pa.sum(axis=1))
    i = int(np.argmin(cost1))
    if cost1[i] < best_cost:
        best_cost, best = float(cost1[i]), (i,)
    if order == 1 or p.shape[0] < 2:
        return best
    cost2 = w_mrb[:, None] + w_mrb[None, :] + 0.5 * (total - pa @ pm.T)
    k = p.shape[0]
    cost2[np.tril_indices(k)] = np.inf  # each pair once, no double flip of one bit
    ij = int(np.argmin(cost2))
    if cost2.flat[ij] < best_cost:
        best = divmod(ij, k)
    return best
