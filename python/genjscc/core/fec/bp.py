"""Batched belief-propagation (BP) decoding of binary linear codes on the Tanner graph of H.

One configurable callable, :class:`BPDecoder`, built once from a parity-check matrix, decodes a
batch of channel LLRs ``[..., n]`` to hard bits (and posterior LLRs). Variants are parameters:

* ``check_rule``: the check-node update, one name each (the same names as the decoders of
  :func:`genjscc.core.fec.decoders.make_decoder`; the functions are public, in
  :data:`CHECK_NODE_RULES`):

  - ``"bp"`` (:func:`sum_product_rule`): exact sum-product, ``2 atanh(prod tanh(v/2))``,
    evaluated in the log domain with ``phi(x) = -ln tanh(x/2)`` (self-inverse):
    ``|c| = phi(sum_j phi|v_j| - phi|v_i|)``. The exclusion is a subtraction, so magnitudes
    are clamped to ``[1e-5, llr_clip]`` before ``phi`` (a zero input would give
    ``inf - inf``); outgoing magnitudes are at most ``llr_clip``.
  - ``"minsum"`` (:func:`minsum_rule`): ``|c| = min_{j != i} |v_j|`` (exact exclusive minimum,
    ties included).
  - ``"normalized-minsum"`` (:func:`normalized_minsum_rule`): ``scaling * min``.
  - ``"offset-minsum"`` (:func:`offset_minsum_rule`): ``max(min - offset, 0)``.
  - a callable ``rule(v2c, llr_clip) -> c2v`` (torch backend only, as Sionna's decoder takes
    one): ``v2c`` is a float tensor ``[checks, degree, batch]`` of the messages into the checks
    of one degree, the result the messages out of them, same shape, the same LLR sign.

  The sign of every built-in rule is the product of the other edges' signs (a zero counts as
  positive). The names of earlier versions (``"tanh"``, ``"normalized_minsum"``,
  ``"offset_minsum"``) still work and give a ``DeprecationWarning``.
* ``schedule``: ``"flooding"`` (all checks, then all variables, per iteration) or ``"layered"``
  (row-layered / serial-C: layers of checks that share no variable are processed one after the
  other, each updating the posterior LLRs at once; ``layers=None`` builds a greedy partition).
* ``early_stop``: a word whose hard decision satisfies every check (zero syndrome, checked
  before the first iteration and after each one) is frozen: its output is the state at that
  point (``num_iters`` 0 when the channel hard decision is already a codeword) and its column
  of the working batch goes to a waiting word; the loop ends when every word has stopped.
* ``osd_order``: ordered-statistics decoding (:mod:`genjscc.core.fec.osd`) of the words BP
  leaves with a nonzero syndrome (BP-OSD): ``None`` (default) off, 0, 1 or 2 its order. Their
  output bits become the OSD codeword (so every word then satisfies H). About 1 ms per failed
  word for LDPC(49,24), 10-50 ms for the 5G NR header codes of the burst OFDM PHY
  (docs/fec.md): meant for short codes, where BP is far from maximum likelihood.

Conventions (docs/conventions.md): ``llr = ln P(b=0|y) / P(b=1|y)``, positive means bit 0;
the hard decision is ``b = (llr < 0)``. Channel LLRs are sanitised first: NaN -> 0 (an erasure),
``+-inf`` and anything larger than ``llr_clip`` in magnitude -> ``+-llr_clip``.

Backends (``backend``): on the CPU, float32 inputs are decoded by the native kernel
(lib/bp_kernel.c through :mod:`genjscc.core.fec._native`: the same rules and schedules, words in
SIMD lanes, each word leaving its lane at its own early stop, ``num_threads`` threads; the tanh
rule there runs in the likelihood-ratio domain, without transcendental functions). The torch
implementation below serves CUDA, float64 and ``backend="torch"``, and the CPU when the kernel
is not built.

Implementation (torch): the edges of the Tanner graph are stored grouped by check degree, so the
messages of all checks of degree ``d`` form one dense ``[num_checks_d, d, batch]`` tensor and
check-node updates are plain reductions over the middle axis (no scatter). Messages are kept
edge-major (``[num_edges, batch]``) so gathers copy contiguous rows and every elementwise op is
vectorised over the batch. Variable-node sums use a second, variable-grouped edge order. The
index tensors are built once per device. On CPU the working batch is capped at about 2**19
messages (cache-sized); longer batches stream through it, each stopped word's column taken
by the next waiting word, so the slow tail of a few hard words is paid once per call. Decoding
runs under ``torch.no_grad`` and is not differentiable.

Precision: messages are float32 by default (``dtype=torch.float64`` is available). Words that
converge decode identically whatever batch they are in; words that do not converge follow a
chaotic path that float rounding (vectorised vs. scalar transcendental functions, float32 vs.
float64) can change, so their final bits may differ between batch sizes or implementations.
Throughput (torch): the decoder issues many mid-sized elementwise ops; on a busy machine torch's
intra-op threads mostly wait for each other, and ``torch.set_num_threads(1)`` can be several
times faster. The native kernel is 10-30x faster than the torch path on the CPU (docs/fec.md,
docs/benchmarks.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from genjscc.core.fec import _native
from genjscc.core.fec.osd import OSD_ORDERS, osd_decode

__all__ = [
    "BACKENDS",
    "CHECK_NODE_RULES",
    "CHECK_RULES",
    "SCHEDULES",
    "BPDecoder",
    "BPResult",
    "RuleParams",
    "greedy_layers",
    "minsum_rule",
    "normalized_minsum_rule",
    "offset_minsum_rule",
    "sum_product_rule",
]

CHECK_RULES = ("bp", "minsum", "normalized-minsum", "offset-minsum")
# names of earlier versions -> the one name now (accepted with a DeprecationWarning)
_OLD_RULE_NAMES = {"tanh": "bp", "normalized_minsum": "normalized-minsum",
                   "offset_minsum": "offset-minsum"}
SCHEDULES = ("flooding", "layered")
BACKENDS = ("auto", "native", "torch")

# Smallest |v2c| fed to phi() in the tanh rule: phi(1e-5) = 12.2, so the exclusive sum
# S - phi_i keeps ~1e-6 absolute precision in float32 and never becomes inf - inf.
_TANH_MIN_MAG = 1e-5
# Once no word waits, drop the stopped words' columns when this fraction of them has stopped.
_COMPACT_FRACTION = 0.125
# CPU decoding runs in chunks of about this many messages (edges x words) so that the working
# set stays in cache; measured on LDPC(49,24) and a (3,6)-regular n=1008 code.
_CPU_CHUNK_ELEMENTS = 1 << 19
_MIN_CPU_CHUNK = 64
# Check groups up to this many messages take the mask-based exclusive minimum (fewer ops).
_SMALL_GROUP = 4096
# OSD scores candidates on the channel LLRs clipped only to this: known bits (5G NR filler,
# FILLER_LLR = 1000) must outweigh any set of noisy channel bits, and float64 sums stay exact.
_OSD_LLR_CLIP = 1e6


class BPResult(NamedTuple):
    """Output of :meth:`BPDecoder.decode` (all on the input's device).

    Attributes:
        bits: uint8 ``[..., n]`` hard decisions ``(llr < 0)``.
        llr: ``[..., n]`` posterior LLRs ``ln P(0)/P(1)`` (the decoder's ``dtype``) at the
            iteration the word stopped at (channel LLR + all incoming check messages).
        num_iters: int32 ``[...]`` iterations each word ran (0: the channel hard decision was
            already a codeword; ``num_iters`` of the decoder: it ran to the limit).
        syndrome_ok: bool ``[...]`` whether ``bits`` satisfy every parity check.
        iterations_run: the largest ``num_iters`` of the batch (0 for an empty batch).
        osd: bool ``[...]`` words whose ``bits`` are the OSD codeword (BP ended with a nonzero
            syndrome; ``osd_order`` set); their ``llr`` stays BP's posterior, so for them
            ``bits`` need not equal ``llr < 0``. None when OSD is off.
    """

    bits: torch.Tensor
    llr: torch.Tensor
    num_iters: torch.Tensor
    syndrome_ok: torch.Tensor
    iterations_run: int
    osd: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------
# Parity-check matrix and graph construction (numpy, once per decoder)
# ---------------------------------------------------------------------------------------------


def _as_edges(H) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Return (check, var) indices of the ones of H (sorted by check, then var), m, n."""
    if isinstance(H, torch.Tensor):
        H = H.detach().cpu().numpy()
    if hasattr(H, "tocoo") and not isinstance(H, np.ndarray):  # scipy.sparse
        coo = H.tocoo()
        coo.sum_duplicates()
        m, n = coo.shape
        data = np.asarray(coo.data)
        rows, cols = np.asarray(coo.row), np.asarray(coo.col)
        keep = data != 0
        if not np.all(data[keep] == 1):
            raise ValueError("H must be binary (entries 0 or 1)")
        rows, cols = rows[keep], cols[keep]
    else:
        arr = np.asarray(H)
        if arr.ndim != 2:
            raise ValueError(f"H must be a 2-D (m, n) parity-check matrix, got shape {arr.shape}")
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        if not np.issubdtype(arr.dtype, np.number) or not np.all((arr == 0) | (arr == 1)):
            raise ValueError("H must be binary (entries 0 or 1)")
        m, n = arr.shape
        rows, cols = np.nonzero(arr)
    if m == 0 or n == 0 or rows.size == 0:
        raise ValueError(f"H of shape ({m}, {n}) has no ones: nothing to decode with")
    order = np.lexsort((cols, rows))
    return rows[order].astype(np.int64), cols[order].astype(np.int64), int(m), int(n)


def greedy_layers(H) -> list[np.ndarray]:
    """Partition the non-empty checks of ``H`` into layers of checks that share no variable.

    First fit in check order: each check goes to the first layer none of whose checks touches
    any of its variables. For a quasi-cyclic code (5G NR) whose rows of one base-graph row are
    consecutive this finds the base-graph rows (Z checks each), or unions of base rows whose
    supports are disjoint.

    Returns:
        list of int64 arrays of check indices (each sorted).
    """
    rows, cols, m, n = _as_edges(H)
    return _greedy_layers(rows, cols, m, n)


def _greedy_layers(rows: np.ndarray, cols: np.ndarray, m: int, n: int) -> list[np.ndarray]:
    starts = np.searchsorted(rows, np.arange(m + 1))
    used = np.zeros((0, n), dtype=bool)
    members: list[list[int]] = []
    for c in range(m):
        vs = cols[starts[c] : starts[c + 1]]
        if vs.size == 0:
            continue
        free = ~used[:, vs].any(axis=1)
        if free.any():
            layer = int(np.argmax(free))
        else:
            layer = used.shape[0]
            used = np.vstack([used, np.zeros((max(1, layer), n), dtype=bool)])
            members.extend([] for _ in range(max(1, layer)))
        used[layer, vs] = True
        members[layer].append(c)
    return [np.asarray(mem, dtype=np.int64) for mem in members if mem]


@dataclass(frozen=True)
class _Groups:
    """Edges in a grouped order: edge ``e`` of the order belongs to ``node[e]``.

    ``spans`` are ``(start, count, degree)``: edges ``start .. start + count*degree`` belong to
    ``count`` nodes of the same ``degree``, ``degree`` consecutive edges per node.
    """

    edge: np.ndarray  # original edge index (into rows/cols) of each position
    spans: tuple[tuple[int, int, int], ...]


def _group_by_degree(node_of_edge: np.ndarray, nodes: np.ndarray) -> _Groups:
    """Order the edges of ``nodes`` (in that order) grouped by node degree, stable."""
    order = np.argsort(node_of_edge, kind="stable")
    sorted_nodes = node_of_edge[order]
    first = np.searchsorted(sorted_nodes, nodes, side="left")
    last = np.searchsorted(sorted_nodes, nodes, side="right")
    deg = last - first
    keep = deg > 0
    nodes, first, deg = nodes[keep], first[keep], deg[keep]
    by_deg = np.argsort(deg, kind="stable")
    edges, spans, pos = [], [], 0
    for d in np.unique(deg):
        sel = by_deg[deg[by_deg] == d]
        idx = (first[sel][:, None] + np.arange(d)[None, :]).reshape(-1)
        edges.append(order[idx])
        spans.append((pos, int(sel.size), int(d)))
        pos += int(sel.size) * int(d)
    return _Groups(np.concatenate(edges), tuple(spans))


# ---------------------------------------------------------------------------------------------
# Check-node rules on one degree group of `count` checks of degree d: v2c [count, d, batch] ->
# c2v written into `out`; `work` and `signs` are scratch tensors of the same shape. Every large
# intermediate goes to a preallocated buffer: on CPU, fresh multi-MB tensors cost more in page
# faults than the arithmetic.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleParams:
    """The constants a built-in check-node rule reads (from the :class:`BPDecoder`)."""

    rule: str
    scaling: float
    offset: float
    llr_clip: float
    phi_clip: float  # phi(llr_clip): the smallest exclusive phi-sum, so |c2v| <= llr_clip


def _phi_(x: torch.Tensor) -> torch.Tensor:
    """In place ``phi(x) = -ln tanh(x/2) = ln(1 + 2/(e^x - 1))`` for ``x > 0`` (self-inverse)."""
    return torch.expm1_(x).reciprocal_().mul_(2.0).log1p_()


def _apply_signs_(out: torch.Tensor, v2c: torch.Tensor, signs: torch.Tensor, one, gain) -> None:
    """``out *= gain * prod_{j != i} sign(v2c_j)``, a zero counting as positive.

    The product over the others is the product over all times the edge's own sign (+-1).
    """
    torch.copysign(one, v2c, out=signs)
    parity = signs.prod(dim=1, keepdim=True)
    if gain != 1.0:
        parity.mul_(gain)
    out.mul_(signs).mul_(parity)


def _exclusive_min_(a: torch.Tensor, out: torch.Tensor) -> None:
    """``out[:, i] = min_{j != i} a[:, j]`` over axis 1 (d >= 2); may overwrite ``a``.

    Exact with ties. Large groups: prefix minima go to ``out`` and suffix minima are built in
    place in ``a`` (3d - 4 elementwise ops on ``[count, batch]`` slices; torch's argmin over a
    middle axis is ~30x slower on CPU). Small groups, where per-op overhead dominates: first
    and second minimum with masks (7 ops).
    """
    if a.numel() <= _SMALL_GROUP:
        min1 = a.amin(dim=1, keepdim=True)
        is_min = a <= min1
        min2 = a.masked_fill(is_min, math.inf).amin(dim=1, keepdim=True)
        tie = is_min.sum(dim=1, keepdim=True, dtype=torch.uint8) > 1
        torch.where(is_min, torch.where(tie, min1, min2), min1, out=out)
        return
    d = a.shape[1]
    a_j, out_j = a.unbind(1), out.unbind(1)  # one call for all column views
    out_j[1].copy_(a_j[0])
    for j in range(2, d):
        torch.minimum(out_j[j - 1], a_j[j - 1], out=out_j[j])
    for j in range(d - 2, 0, -1):
        torch.minimum(out_j[j], a_j[j + 1], out=out_j[j])
        torch.minimum(a_j[j], a_j[j + 1], out=a_j[j])
    out_j[0].copy_(a_j[1])


# The built-in rules share one in-place signature: ``rule(v2c, out, work, signs, one, params)``
# with ``v2c`` [count, d, batch] the messages into `count` checks of degree d, ``out`` where the
# messages out of them go, ``work`` and ``signs`` scratch tensors of the same shape, ``one`` a
# 1.0 of the message dtype on the device, ``params`` a RuleParams.


def sum_product_rule(v2c, out, work, signs, one, p: RuleParams) -> None:
    """``"bp"``: the exact sum-product update (module docstring), in place into ``out``."""
    phi = _phi_(torch.abs(v2c, out=work).clamp_(_TANH_MIN_MAG, p.llr_clip))
    total = phi.sum(dim=1, keepdim=True)
    # exclusive sums by subtraction; the clamp keeps phi() of them <= llr_clip
    _phi_(torch.sub(total, phi, out=out).clamp_(min=p.phi_clip))
    _apply_signs_(out, v2c, signs, one, 1.0)


def _minsum(v2c, out, work, signs, one, p: RuleParams, offset: float, gain: float) -> None:
    mag = torch.abs(v2c, out=work)
    if offset:  # max(min - b, 0) = min(max(a - b, 0)): offset first
        mag.sub_(offset).clamp_(min=0.0)
    if v2c.shape[1] == 1:  # a degree-1 check: no other edge, the bit is forced to 0
        out.fill_(p.llr_clip)
    else:
        _exclusive_min_(mag, out)
    _apply_signs_(out, v2c, signs, one, gain)


def minsum_rule(v2c, out, work, signs, one, p: RuleParams) -> None:
    """``"minsum"``: the exclusive minimum of the other magnitudes, in place into ``out``."""
    _minsum(v2c, out, work, signs, one, p, 0.0, 1.0)


def normalized_minsum_rule(v2c, out, work, signs, one, p: RuleParams) -> None:
    """``"normalized-minsum"``: ``scaling`` times the min-sum update, in place into ``out``."""
    _minsum(v2c, out, work, signs, one, p, 0.0, p.scaling)


def offset_minsum_rule(v2c, out, work, signs, one, p: RuleParams) -> None:
    """``"offset-minsum"``: ``max(min - offset, 0)``, in place into ``out``."""
    _minsum(v2c, out, work, signs, one, p, p.offset, 1.0)


CHECK_NODE_RULES: dict[str, Callable[..., None]] = {
    "bp": sum_product_rule,
    "minsum": minsum_rule,
    "normalized-minsum": normalized_minsum_rule,
    "offset-minsum": offset_minsum_rule,
}
"""Check-rule name -> built-in rule (in place, signature above)."""


def _callable_rule(rule: Callable[[torch.Tensor, float], torch.Tensor]) -> Callable[..., None]:
    """A user rule ``rule(v2c, llr_clip) -> c2v`` in the in-place signature."""

    def apply(v2c, out, work, signs, one, p: RuleParams) -> None:
        c2v = rule(v2c, p.llr_clip)
        if not isinstance(c2v, torch.Tensor) or c2v.shape != v2c.shape:
            raise ValueError(f"check_rule must return a tensor of the input's shape "
                             f"{tuple(v2c.shape)}, got {getattr(c2v, 'shape', type(c2v))}")
        out.copy_(c2v)

    return apply


def _rule_name(check_rule: Any) -> str | Callable:
    """The one name of a rule (old names mapped, with a DeprecationWarning), or the callable."""
    if callable(check_rule):
        return check_rule
    if check_rule in _OLD_RULE_NAMES:
        new = _OLD_RULE_NAMES[check_rule]
        warnings.warn(f"check_rule={check_rule!r} is deprecated; use {new!r}",
                      DeprecationWarning, stacklevel=3)
        return new
    if check_rule not in CHECK_RULES:
        raise ValueError(f"check_rule must be one of {CHECK_RULES} or a callable, got "
                         f"{check_rule!r}")
    return check_rule


# ---------------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------------


class _DeviceGraph:
    """Index tensors of one decoder on one device."""

    def __init__(self, dec: BPDecoder, device: torch.device):
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.int64, device=device)

        self.one = torch.ones(1, dtype=dec.dtype, device=device)
        self.var_order = t(dec._var_order)  # internal row r holds original variable var_order[r]
        self.var_rank = t(dec._var_rank)  # original variable j is internal row var_rank[j]
        self.syn_var = t(dec._syn_var)  # internal variable of each edge, syndrome order
        if dec.schedule == "flooding":
            self.edge_var = t(dec._edge_var)  # internal variable of each edge, check order
            self.to_var_order = t(dec._to_var_order)  # check order -> variable-grouped order
        else:
            self.layer_var = [t(v) for v in dec._layer_var]


class BPDecoder:
    """Belief-propagation decoder of a binary linear code, batched over words.

    Args:
        H: parity-check matrix ``(m, n)``: numpy (any integer/bool dtype, 0/1 entries),
            scipy.sparse, or a torch tensor. Redundant (linearly dependent) rows are fine and
            are used as extra checks; all-zero rows are ignored.
        check_rule: ``"bp"`` (sum-product), ``"minsum"``, ``"normalized-minsum"``,
            ``"offset-minsum"``, or a callable ``rule(v2c, llr_clip) -> c2v`` (torch backend;
            see the module docstring).
        num_iters: maximum number of BP iterations (>= 0).
        schedule: ``"flooding"`` or ``"layered"``.
        layers: for ``"layered"``: a sequence of arrays of check indices; the checks of one
            layer must share no variable and every non-empty check must appear exactly once.
            ``None`` builds a greedy partition (:func:`greedy_layers`).
        scaling: multiplier of ``"normalized-minsum"`` (0 < scaling <= 1).
        offset: subtracted by ``"offset-minsum"`` (>= 0).
        early_stop: stop each word at zero syndrome (checked before the first iteration too);
            with ``False`` every word runs ``num_iters`` iterations.
        llr_clip: channel LLRs are clipped to ``[-llr_clip, llr_clip]`` (``+-inf`` included);
            the tanh rule's outgoing messages are at most ``llr_clip`` in magnitude.
        dtype: float type of the messages, ``torch.float32`` (default) or ``torch.float64``
            (slower; bit-exact comparisons with double-precision decoders).
        device: where to build the index tensors up front (optional; inputs on another device
            get their own copy on first use). Decoding always runs on the input's device.
        backend: ``"auto"`` (default): CPU inputs go to the native kernel (lib/bp_kernel.c,
            batch-major SIMD, words stop and leave their lane one by one) when it is built
            and ``dtype`` is float32, everything else to the torch implementation (CUDA,
            float64, or no kernel: logged once); ``"native"``: the kernel or an error;
            ``"torch"``: always the torch implementation.
        num_threads: threads of the native kernel (words are shared out between them);
            ``None``: ``torch.get_num_threads()`` at each call.
        osd_order: ``None`` (default): plain BP; 0, 1 or 2: ordered-statistics decoding of
            that order (:func:`genjscc.core.fec.osd.osd_decode`, on the CPU) for each word BP
            leaves with a nonzero syndrome, on the word's channel LLRs (NaN read as 0,
            magnitudes clipped to 1e6, not to ``llr_clip``: known bits such as 5G NR filler
            keep their weight). Ordered by BP's last posterior instead, it left more block
            errors on each short code tried (LDPC(49,24), BCH(63,45), LDPC(121,80)).

    Call ``dec(llr)`` for hard bits or ``dec.decode(llr)`` for a :class:`BPResult`. Channel
    LLRs: NaN is read as 0 (erasure), ``+-inf`` and larger magnitudes as ``+-llr_clip``.

    Attributes:
        n, m, num_edges: code length, rows of H, ones of H.
        layers: (layered schedule) the layers used, as arrays of check indices.
        backend, num_threads: as given (:meth:`uses_native` says which implementation a
            device gets).

    Example::

        H = load_parity_check("LDPC_N49_K24")                 # genjscc.core.fec.codes
        dec = BPDecoder(H, check_rule="normalized-minsum", num_iters=20)
        res = dec.decode(2.0 * y / noise_var)                  # y: BPSK (+1 = bit 0), [B, 49]
        res.bits, res.num_iters, res.syndrome_ok               # [B, 49] uint8, [B], [B]
    """

    def __init__(
        self,
        H,
        check_rule: str | Callable[[torch.Tensor, float], torch.Tensor] = "bp",
        num_iters: int = 50,
        schedule: str = "flooding",
        layers: Sequence[Sequence[int]] | None = None,
        scaling: float = 0.75,
        offset: float = 0.5,
        early_stop: bool = True,
        llr_clip: float = 20.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        backend: str = "auto",
        num_threads: int | None = None,
        osd_order: int | None = None,
    ):
        check_rule = _rule_name(check_rule)
        if osd_order is not None and (isinstance(osd_order, bool) or osd_order not in OSD_ORDERS):
            raise ValueError(f"osd_order must be None (off) or one of {OSD_ORDERS}, "
                             f"got {osd_order!r}")
        if callable(check_rule) and backend == "native":
            raise ValueError("a callable check_rule runs on the torch backend; use "
                             "backend='auto' or 'torch'")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if isinstance(num_iters, bool) or int(num_iters) != num_iters or num_iters < 0:
            raise ValueError(f"num_iters must be an integer >= 0, got {num_iters!r}")
        if not 0.0 < scaling <= 1.0:
            raise ValueError(f"scaling must be in (0, 1], got {scaling}")
        if not offset >= 0.0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if not (math.isfinite(llr_clip) and llr_clip > 0.0):
            raise ValueError(f"llr_clip must be a finite positive number, got {llr_clip}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if layers is not None and schedule != "layered":
            raise ValueError("layers only apply to schedule='layered'")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if num_threads is not None and (isinstance(num_threads, bool)
                                        or int(num_threads) != num_threads or num_threads < 1):
            raise ValueError(f"num_threads must be None or an integer >= 1, got {num_threads!r}")
        if backend == "native":
            if not _native.available():
                raise RuntimeError(f"backend='native': {_native.reason()}")
            if dtype != torch.float32:
                raise ValueError("backend='native' decodes float32 messages only")
        self.backend = backend
        self.osd_order = None if osd_order is None else int(osd_order)
        self.num_threads = None if num_threads is None else int(num_threads)

        rows, cols, m, n = _as_edges(H)
        self.n, self.m, self.num_edges = n, m, int(rows.size)
        self.check_rule, self.schedule = check_rule, schedule
        self.num_iters, self.early_stop = int(num_iters), bool(early_stop)
        self.scaling, self.offset, self.llr_clip = float(scaling), float(offset), float(llr_clip)
        self.dtype = dtype
        phi_clip = -math.log(math.tanh(self.llr_clip / 2.0))
        name = check_rule if isinstance(check_rule, str) else "callable"
        self._params = RuleParams(name, self.scaling, self.offset, self.llr_clip, phi_clip)
        self._rule = (_callable_rule(check_rule) if callable(check_rule)
                      else CHECK_NODE_RULES[check_rule])

        checks = np.arange(m)
        syn = _group_by_degree(rows, checks)
        self._syn_spans = syn.spans
        if schedule == "flooding":
            self._build_flooding(rows, cols, syn)
        else:
            self._build_layered(rows, cols, m, n, layers)
        self._syn_var = self._var_rank[cols[syn.edge]]
        self._graphs: dict[torch.device, _DeviceGraph] = {}
        self._rows, self._cols = rows, cols
        self._native_code: _native.NativeCode | None = None
        self._dense_h: np.ndarray | None = None  # built on the first OSD call
        if device is not None:
            self._graph(torch.device(device))

    # -- construction ----------------------------------------------------------------------

    def _build_flooding(self, rows: np.ndarray, cols: np.ndarray, syn: _Groups) -> None:
        # internal variable order: grouped by degree, so variable sums are dense reductions
        var = _group_by_degree(cols, np.arange(self.n))
        deg = np.bincount(cols, minlength=self.n)
        self._var_order = np.argsort(deg, kind="stable")
        self._var_rank = np.empty(self.n, dtype=np.int64)
        self._var_rank[self._var_order] = np.arange(self.n)
        self._num_isolated = int(np.sum(deg == 0))  # degree-0 variables come first
        self._check_spans = syn.spans
        self._edge_var = self._var_rank[cols[syn.edge]]
        pos_in_check_order = np.empty(self.num_edges, dtype=np.int64)
        pos_in_check_order[syn.edge] = np.arange(self.num_edges)
        self._to_var_order = pos_in_check_order[var.edge]
        self._var_spans = var.spans

    def _build_layered(self, rows, cols, m: int, n: int, layers) -> None:
        self._var_order = np.arange(n)
        self._var_rank = np.arange(n)
        nonempty = np.unique(rows)
        if layers is None:
            layers = _greedy_layers(rows, cols, m, n)
        layers = [np.asarray(lay, dtype=np.int64).reshape(-1) for lay in layers]
        seen = np.zeros(m, dtype=np.int64)
        for i, lay in enumerate(layers):
            if lay.size and (lay.min() < 0 or lay.max() >= m):
                raise ValueError(f"layers[{i}] has check indices outside [0, {m})")
            np.add.at(seen, lay, 1)
        if np.any(seen > 1):
            raise ValueError(f"checks {np.flatnonzero(seen > 1)[:10]} appear in several layers")
        missing = np.setdiff1d(nonempty, np.flatnonzero(seen))
        if missing.size:
            raise ValueError(f"checks {missing[:10]} are in no layer; every check needs one")
        self.layers = []
        self._layer_var, self._layer_spans, self._layer_start = [], [], []
        start = 0
        for i, lay in enumerate(layers):
            grp = _group_by_degree(rows, np.sort(lay))
            if grp.edge.size == 0:
                continue
            v = cols[grp.edge]
            if np.unique(v).size != v.size:
                raise ValueError(
                    f"the checks of layers[{i}] share variables; a layer needs orthogonal checks"
                )
            self.layers.append(np.sort(lay))
            self._layer_var.append(v)
            self._layer_spans.append(grp.spans)
            self._layer_start.append(start)
            start += int(grp.edge.size)

    def _graph(self, device: torch.device) -> _DeviceGraph:
        g = self._graphs.get(device)
        if g is None:
            g = self._graphs[device] = _DeviceGraph(self, device)
        return g

    # -- input -----------------------------------------------------------------------------

    def _check(self, llr) -> torch.Tensor:
        """Validate ``llr [..., n]``; return it as a tensor."""
        if not isinstance(llr, torch.Tensor):
            if isinstance(llr, np.ndarray):
                llr = torch.from_numpy(llr)
            else:
                raise TypeError(f"llr must be a torch.Tensor, got {type(llr).__name__}")
        if llr.is_complex() or llr.dtype == torch.bool:
            raise TypeError(
                f"llr must be real LLRs (float, or integers), got dtype {llr.dtype}; "
                "hard bits b map to LLRs as 1 - 2*b"
            )
        if llr.ndim == 0 or llr.shape[-1] != self.n:
            raise ValueError(
                f"llr must have shape [..., n] with n = {self.n}, got {tuple(llr.shape)}"
            )
        return llr

    def _prepare(self, llr: torch.Tensor) -> torch.Tensor:
        """Sanitise checked ``llr [..., n]``; return ``[n, batch]`` in internal row order."""
        x = llr.detach().reshape(-1, self.n).to(self.dtype)
        g = self._graph(x.device)
        x = x.t().index_select(0, g.var_order)  # [n, batch], internal variable order
        x = torch.nan_to_num_(x, nan=0.0, posinf=self.llr_clip, neginf=-self.llr_clip)
        return x.clamp_(-self.llr_clip, self.llr_clip)

    # -- decoding --------------------------------------------------------------------------

    def __call__(self, llr: torch.Tensor) -> torch.Tensor:
        """Decode ``llr`` float ``[..., n]`` (``ln P(0)/P(1)``); return uint8 bits ``[..., n]``."""
        return self.decode(llr).bits

    def decode(self, llr: torch.Tensor) -> BPResult:
        """Decode ``llr`` float ``[..., n]`` (``ln P(0)/P(1)``, any device); see BPResult.

        Raises:
            TypeError: ``llr`` is not a real tensor (bool and complex are refused; integer
                dtypes are converted to the decoder's ``dtype``).
            ValueError: the last dimension is not ``n``.
        """
        llr = self._check(llr)
        native = self.uses_native(llr.device)
        res = self._decode_native(llr) if native else self._decode_torch(llr)
        return res if self.osd_order is None else self._osd(llr, res)

    def _osd(self, llr: torch.Tensor, res: BPResult) -> BPResult:
        """``res`` with the words of nonzero syndrome replaced by their OSD codeword."""
        ok = res.syndrome_ok.reshape(-1)
        used = torch.zeros_like(ok)
        failed = (~ok).nonzero().squeeze(1)
        if failed.numel() == 0:
            return res._replace(osd=used.reshape(res.syndrome_ok.shape))
        if self._dense_h is None:
            self._dense_h = np.zeros((self.m, self.n), dtype=np.uint8)
            self._dense_h[self._rows, self._cols] = 1
        ch = llr.detach().reshape(-1, self.n)[failed.to(llr.device)].to("cpu", torch.float64)
        ch = torch.nan_to_num(ch, nan=0.0).clamp_(-_OSD_LLR_CLIP, _OSD_LLR_CLIP)
        cw = osd_decode(self._dense_h, ch, self.osd_order)
        bits = res.bits.reshape(-1, self.n).clone()
        bits[failed] = torch.from_numpy(cw).to(bits.device)
        ok = ok.clone()
        ok[failed] = True
        used[failed] = True
        shape = res.syndrome_ok.shape
        return res._replace(bits=bits.reshape(res.bits.shape), syndrome_ok=ok.reshape(shape),
                            osd=used.reshape(shape))

    @torch.no_grad()
    def _decode_torch(self, llr: torch.Tensor) -> BPResult:
        ch = self._prepare(llr)
        g = self._graph(ch.device)
        # On CPU the working batch is capped so that the messages stay in cache; a GPU takes
        # the whole batch. Converged words leave the working batch and waiting words take
        # their place, so a few slow words cost a single tail of iterations per call.
        width = ch.shape[1]
        if ch.device.type == "cpu":
            width = min(width, max(_MIN_CPU_CHUNK, _CPU_CHUNK_ELEMENTS // self.num_edges))
        batcher = _Batcher(ch, width, self.num_iters, self.early_stop)
        if self.early_stop or self.num_iters == 0:
            # words whose hard decision is already a codeword need no iteration
            for start in range(0, ch.shape[1], max(width, 1)):
                part = ch[:, start : start + width]
                ok = self._posterior_ok(part, g, part.new_empty(0, dtype=torch.bool))
                batcher.prescreen(start, ok, everything=self.num_iters == 0)
        if batcher.start():
            work = _Workspace(self.num_edges, batcher.width, ch.dtype, ch.device)
            step = self._flooding if self.schedule == "flooding" else self._layered
            step(batcher, g, work)
        return batcher.result(g, tuple(llr.shape[:-1]))

    def uses_native(self, device: torch.device | str = "cpu") -> bool:
        """Whether inputs on ``device`` are decoded by the native kernel (see ``backend``)."""
        if not isinstance(device, torch.device):
            device = torch.device(device)
        if self.backend == "torch" or callable(self.check_rule):
            return False
        if self.backend == "native":
            if device.type != "cpu":
                raise ValueError(f"backend='native' decodes CPU inputs, got one on {device}")
            return True
        if device.type != "cpu" or self.dtype != torch.float32:
            return False
        if not _native.available():
            _native.warn_fallback()
            return False
        return True

    def _native(self) -> _native.NativeCode:
        if self._native_code is None:
            starts = np.searchsorted(self._rows, np.arange(self.m + 1))
            if self.schedule == "layered":
                order = np.concatenate(self.layers)
            else:
                order = np.flatnonzero(np.diff(starts))
            checks = [self._cols[starts[c] : starts[c + 1]] for c in order]
            p = self._params
            self._native_code = _native.NativeCode(
                self.n, checks, self.schedule, self.check_rule, self.num_iters,
                self.early_stop, p.scaling, p.offset, p.llr_clip)
        return self._native_code

    def _decode_native(self, llr: torch.Tensor) -> BPResult:
        batch_shape = tuple(llr.shape[:-1])
        x = llr.detach()
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        threads = self.num_threads or torch.get_num_threads()
        post, bits, iters, ok, most = self._native().decode_arrays(x, batch_shape, threads)
        return BPResult(bits=bits, llr=post, num_iters=iters, syndrome_ok=ok,
                        iterations_run=most)

    def _posterior_ok(self, post: torch.Tensor, g: _DeviceGraph, hard: torch.Tensor):
        """``[batch]`` bool: the hard decision of ``post [n, batch]`` satisfies every check.

        ``hard`` is a bool buffer of at least ``num_edges * batch`` elements (or empty).
        """
        batch = post.shape[1]
        if hard.numel() >= self.num_edges * batch:
            hard = hard[: self.num_edges * batch].view(self.num_edges, batch)
            torch.index_select(post < 0, 0, g.syn_var, out=hard)
        else:
            hard = torch.index_select(post < 0, 0, g.syn_var)
        unsat = None
        for start, count, d in self._syn_spans:
            blk = hard[start : start + count * d].view(count, d, batch)
            odd = blk.sum(dim=1, dtype=torch.uint8).bitwise_and_(1).amax(dim=0)
            unsat = odd if unsat is None else unsat.bitwise_or_(odd)
        return unsat == 0

    def _check_nodes(self, v2c, c2v, spans, key: int, work: _Workspace, g: _DeviceGraph) -> None:
        """Check-node update of the checks in ``spans``: ``c2v`` from ``v2c`` (both
        ``[edges, batch]``, edges grouped as in ``spans``). ``key`` names the edge set."""
        # The per-group views only change when the working batch does: build them once then
        # (per-op overhead dominates once only a few slow words are left).
        signature = (v2c.data_ptr(), c2v.data_ptr(), v2c.shape[-1])
        cached = work.views.get(key)
        if cached is None or cached[0] != signature:
            batch = v2c.shape[-1]
            scratch, signs = work.float_views(2, v2c.shape[0], batch)
            views = []
            for start, count, d in spans:
                sl, shape = slice(start, start + count * d), (count, d, batch)
                views.append(tuple(t[sl].view(shape) for t in (v2c, c2v, scratch, signs)))
            cached = work.views[key] = (signature, views)
        rule, one, params = self._rule, g.one, self._params
        for v2c_g, c2v_g, scratch_g, signs_g in cached[1]:
            rule(v2c_g, c2v_g, scratch_g, signs_g, one, params)

    def _var_sums(self, c2v, g: _DeviceGraph, ch, total, work: _Workspace) -> None:
        """``total [n, batch]`` = posterior LLRs: channel LLR + every incoming check message."""
        batch = c2v.shape[-1]
        (c2v_v,) = work.float_views(1, self.num_edges, batch)
        torch.index_select(c2v, 0, g.to_var_order, out=c2v_v)
        row = self._num_isolated
        if row:  # variables in no check keep their channel LLR
            total[:row].zero_()
        for start, count, d in self._var_spans:
            blk = c2v_v[start : start + count * d].view(count, d, batch)
            torch.sum(blk, dim=1, out=total[row : row + count])
            row += count
        total.add_(ch)

    def _flooding(self, batcher: _Batcher, g: _DeviceGraph, work: _Workspace) -> None:
        ch = batcher.first()  # channel LLRs of the working batch [n, width]
        c2v = ch.new_zeros(self.num_edges, ch.shape[1])
        total = ch.clone()  # posterior LLRs [n, width]
        while True:
            (total_e,) = work.float_views(1, self.num_edges, ch.shape[1], first=2)
            v2c = torch.index_select(total, 0, g.edge_var, out=total_e).sub_(c2v)
            self._check_nodes(v2c, c2v, self._check_spans, -1, work, g)
            self._var_sums(c2v, g, ch, total, work)
            batcher.advance()
            if batcher.need_check():
                change = batcher.update(total, self._posterior_ok(total, g, work.bools))
                if change is None:
                    return
                if change is not True:
                    ch, total, c2v = change.apply(fresh=(ch, total), zeroed=(c2v,))

    def _layered(self, batcher: _Batcher, g: _DeviceGraph, work: _Workspace) -> None:
        post = batcher.first()  # posterior LLRs [n, width]
        c2v = post.new_zeros(self.num_edges, post.shape[1])
        while True:
            (v2c_all,) = work.float_views(1, self.num_edges, post.shape[1], first=2)
            layers = zip(g.layer_var, self._layer_spans, self._layer_start, strict=True)
            for i, (var, spans, start) in enumerate(layers):
                size = var.numel()
                c2v_l = c2v[start : start + size]
                v2c = torch.index_select(post, 0, var, out=v2c_all[:size]).sub_(c2v_l)
                self._check_nodes(v2c, c2v_l, spans, i, work, g)
                post.index_copy_(0, var, v2c.add_(c2v_l))
            batcher.advance()
            if batcher.need_check():
                change = batcher.update(post, self._posterior_ok(post, g, work.bools))
                if change is None:
                    return
                if change is not True:
                    post, c2v = change.apply(fresh=(post,), zeroed=(c2v,))


class _Workspace:
    """Flat scratch buffers for one batch, viewed as ``[rows, batch]`` for any batch <= it."""

    def __init__(self, num_edges: int, batch: int, dtype: torch.dtype, device: torch.device):
        size = num_edges * batch
        self.floats = [torch.empty(size, dtype=dtype, device=device) for _ in range(3)]
        self.bools = torch.empty(size, dtype=torch.bool, device=device)
        self.views: dict[int, tuple] = {}  # per edge set: (signature, per-group views)

    def float_views(self, count: int, rows: int, batch: int, first: int = 0):
        return [buf[: rows * batch].view(rows, batch) for buf in self.floats[first : first + count]]

    def hard(self, rows: int, batch: int) -> torch.Tensor:
        return self.bools[: rows * batch].view(rows, batch)


class _Change:
    """A change of the working batch: columns ``cols`` get new words, or only ``cols`` stay."""

    def __init__(self, cols: torch.Tensor, new: torch.Tensor | None):
        self.cols, self.new = cols, new

    def apply(self, fresh: tuple, zeroed: tuple) -> tuple:
        """Return the state tensors ``fresh + zeroed`` (all ``[rows, width]``) changed.

        Refill (``new`` given): in place, ``fresh`` columns get the new channel LLRs and
        ``zeroed`` columns (messages) zeros. Compaction: every tensor keeps columns ``cols``.
        """
        if self.new is None:
            return tuple(t.index_select(1, self.cols) for t in (*fresh, *zeroed))
        for t in fresh:
            t.index_copy_(1, self.cols, self.new)
        for t in zeroed:
            t.index_fill_(1, self.cols, 0.0)
        return (*fresh, *zeroed)


class _Batcher:
    """Which words are in the working batch, their iteration counts, and the outputs.

    ``ch`` holds every word's channel LLRs ``[n, batch]``. Words wait in a queue; the working
    batch holds up to ``width`` of them. A word stops at zero syndrome (``early_stop``) or
    after ``num_iters`` iterations: its output is stored then, and its column is given to the
    next waiting word at once (or, once none waits, dropped when enough columns are idle).
    Words whose channel hard decision is already a codeword can be stored up front
    (``prescreen``) with 0 iterations.
    """

    def __init__(self, ch: torch.Tensor, width: int, num_iters: int, early_stop: bool):
        batch, dev = ch.shape[1], ch.device
        self.ch, self.width = ch, width
        self.num_iters, self.early_stop = num_iters, early_stop
        self.llr = torch.empty(ch.shape[::-1], dtype=ch.dtype, device=dev)  # [batch, n]
        self.out_iters = torch.zeros(batch, dtype=torch.int32, device=dev)
        self.out_ok = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.queue = torch.arange(batch, device=dev)  # words still to decode, in order
        self.next = 0  # queue position of the next word to enter the working batch
        self._skip: list[torch.Tensor] = []

    def _store(self, dst: torch.Tensor, post_cols: torch.Tensor, iters, ok) -> None:
        self.llr.index_copy_(0, dst, post_cols.t())
        self.out_iters[dst] = iters
        self.out_ok[dst] = ok

    def prescreen(self, start: int, ok: torch.Tensor, everything: bool) -> None:
        """Store the words ``start + i`` with ``ok[i]`` (all with ``everything``) as decoded
        after 0 iterations."""
        idx = torch.arange(ok.numel(), device=ok.device) if everything else ok.nonzero()[:, 0]
        if idx.numel():
            dst = idx + start
            self._store(dst, self.ch.index_select(1, dst), 0, ok[idx])
            self._skip.append(dst)

    def start(self) -> bool:
        """Fill the first working batch; False when no word needs decoding."""
        if self._skip:
            waiting = torch.ones(self.ch.shape[1], dtype=torch.bool, device=self.ch.device)
            waiting[torch.cat(self._skip)] = False
            self.queue = waiting.nonzero().squeeze(1)
        self.width = min(self.width, self.queue.numel())
        self.words = self.queue[: self.width].clone()  # word of each working column
        self.next = self.width
        dev = self.ch.device
        self.iters = torch.zeros(self.width, dtype=torch.int32, device=dev)
        self.alive = torch.ones(self.width, dtype=torch.bool, device=dev)
        self.num_dead = 0  # stopped words whose column is still in the working batch
        self.max_iters = 0  # an upper bound of `iters`
        return self.width > 0

    def first(self) -> torch.Tensor:
        return self.ch.index_select(1, self.words)

    def need_check(self) -> bool:
        return self.early_stop or self.max_iters >= self.num_iters

    def advance(self) -> None:
        self.iters += 1
        self.max_iters += 1

    def update(self, post: torch.Tensor, ok: torch.Tensor) -> _Change | bool | None:
        """Store the words that stop now; ``post [n, width]``, ``ok [width]`` (zero syndrome).

        Returns None when every word is done, True to keep the working batch as it is, or
        the :class:`_Change` to apply to it.
        """
        if not self.early_stop:
            stop = torch.zeros_like(ok)
        else:
            stop = ok & self.alive if self.num_dead else ok.clone()
        if self.max_iters >= self.num_iters:
            stop |= self.alive & (self.iters >= self.num_iters)
        idx = stop.nonzero().squeeze(1)
        if idx.numel() == 0:
            return True
        self._store(self.words[idx], post.index_select(1, idx), self.iters[idx], ok[idx])
        self.alive[idx] = False
        self.num_dead += idx.numel()
        take = min(idx.numel(), self.queue.numel() - self.next)
        if take:  # waiting words take the stopped words' columns
            cols = idx[:take]
            self.words[cols] = self.queue[self.next : self.next + take]
            self.iters[cols] = 0
            self.alive[cols] = True
            self.num_dead -= take
            self.next += take
            self.max_iters = int(self.iters.max())
            return _Change(cols, self.ch.index_select(1, self.words[cols]))
        width = self.alive.numel()
        if self.num_dead == width:
            return None
        if self.num_dead < _COMPACT_FRACTION * width:
            return True
        keep = self.alive.nonzero().squeeze(1)
        self.words, self.iters, self.alive = self.words[keep], self.iters[keep], self.alive[keep]
        self.num_dead = 0
        return _Change(keep, None)

    def result(self, g: _DeviceGraph, batch_shape: tuple) -> BPResult:
        n = self.llr.shape[1]
        llr = self.llr.index_select(1, g.var_rank)  # back to the caller's variable order
        llr = llr.reshape(*batch_shape, n)
        return BPResult(
            bits=(llr < 0).to(torch.uint8),
            llr=llr,
            num_iters=self.out_iters.reshape(batch_shape),
            syndrome_ok=self.out_ok.reshape(batch_shape),
            iterations_run=int(self.out_iters.max()) if self.out_iters.numel() else 0,
        )
