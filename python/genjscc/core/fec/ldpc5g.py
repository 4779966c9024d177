"""5G NR LDPC channel coding per 3GPP TS 38.212: segmentation, encoding, rate matching.

* Base graphs BG1/BG2 (Tables 5.3.2-2/-3) from the shipped tables in ``genjscc/data/nr`` and
  the 51 lifting sizes of Table 5.3.2-1; base-graph choice per §7.2.2.
* Code block segmentation with CRC-24B per block when ``C > 1`` and filler bits (§5.2.2).
* Encoding (§5.3.2): the lifted H has ``Z x Z`` circulant blocks, the identity shifted right by
  ``P = V mod Z``. The first 4 parity blocks come from the double-diagonal core solved with
  cyclic shifts, the extension parities are single sparse products; batched torch on the
  input's device.
* Rate matching (§5.4.2): circular buffer of ``N_cb`` bits (limited-buffer rate matching off
  unless ``tbs_lbrm`` is given), start ``k0`` of redundancy version ``rv``, bit selection that
  skips filler bits, puncturing of the first ``2Z`` systematic bits, bit interleaving over
  ``Q_m`` rows. :meth:`NR5GLDPC.rate_recover` is the exact inverse for LLRs.

Lengths (field's words, as in the spec): ``k`` = K' information bits per code block (data plus
any CB-CRC, without filler), ``k_ldpc`` = K = 22 Z (BG1) or 10 Z (BG2) including the
``num_filler`` = F = K - K' filler bits, ``n`` = 68 Z (BG1) or 52 Z (BG2) columns of the lifted H
(the full codeword, with the 2 Z punctured bits), ``e`` = E bits after rate matching.

LLR sign (docs/conventions.md): ``llr = ln P(b=0)/P(b=1)``. Filler bits are known zeros, so
rate recovery gives them the large positive LLR :data:`FILLER_LLR`; punctured and never-sent
positions get 0. (py3gpp and MATLAB use the same sign and put ``+inf`` on filler bits; Sionna
uses logits ``ln P(1)/P(0)``, the opposite sign.)

One code block (e.g. for BER curves): ``code = NR5GLDPC(k=512, e=1024)``, ``tx =
code.encode(u)``, ``llr_cw = code.rate_recover(llr_tx)``, decode with ``code.H``, and the
information bits are ``cw_hat[..., :k]``. A whole transport block of A bits and G coded bits::

    bg = select_base_graph(A, code_rate)
    tb = CRC("24A" if A > 3824 else "16").attach(payload)    # [..., B], B = A + L
    blocks = segment(tb, bg)                                 # [..., C, K'], CRC-24B if C > 1
    e_r = rate_match_lengths(G, blocks.shape[-2], qm)        # E of each code block
    tx = torch.cat([NR5GLDPC(blocks.shape[-1], e, base_graph=bg, modulation_order=qm)
                    .encode(blocks[..., r, :]) for r, e in enumerate(e_r)], dim=-1)

Checked bit-exact against py3gpp 0.6.0 (encoding, rate matching and recovery, segmentation,
whole DL-SCH chain) and Sionna 2.2 (encoder with rate matching, rv 0..3). py3gpp's encoder is
wrong for BG2 with K = 10 Z <= 640: it applies the short-block K_b (6, 8, 9) to K instead of B
and so lifts with another Z's shift set.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import torch

from genjscc.core.fec.codes import _check_bits

__all__ = [
    "FILLER_LLR",
    "LIFTING_SIZES",
    "NR5GLDPC",
    "NRSegmentation",
    "base_graph_matrix",
    "desegment",
    "lifted_parity_check",
    "rate_match_lengths",
    "rate_matching_index",
    "segment",
    "segmentation_info",
    "select_base_graph",
    "select_lifting_size",
]

FILLER_LLR = 1000.0
"""LLR given to filler bits (known zeros) by rate recovery; decoders should clip internally."""

MODULATION_ORDERS = (1, 2, 4, 6, 8, 10)
CB_CRC_LENGTH = 24  # CRC-24B per code block when a transport block is segmented
_R_LBRM = (2, 3)  # limited-buffer rate matching assumes R_LBRM = 2/3 (§5.4.2.1)


@dataclass(frozen=True)
class _BaseGraphParams:
    rows: int  # base-graph rows (check blocks)
    cols: int  # base-graph columns (variable blocks)
    kb_cols: int  # systematic columns, K = kb_cols * Z
    k_cb: int  # maximum code block size K_cb
    k0_factors: tuple[int, int, int, int]  # numerators of k0 for rv = 0..3
    n_over_z: int  # N / Z: the circular buffer length before LBRM (punctured bits excluded)


_BG = {
    1: _BaseGraphParams(46, 68, 22, 8448, (0, 17, 33, 56), 66),
    2: _BaseGraphParams(42, 52, 10, 3840, (0, 13, 25, 43), 50),
}
_CORE_ROWS = 4  # rows 0..3 hold the double-diagonal core; rows >= 4 the identity extension


# ----------------------------------------------------------------------------- tables


def _read_csv(name: str) -> np.ndarray:
    text = (resources.files("genjscc") / "data" / "nr" / name).read_text()
    return np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)


@lru_cache(maxsize=2)
def _shift_table(base_graph: int) -> np.ndarray:
    """Rows ``(row, col, V_ils0, ..., V_ils7)`` of one base graph, sorted by row then column."""
    return _read_csv(f"nr_bg{base_graph}_shifts.csv")


@lru_cache(maxsize=1)
def _lifting_table() -> dict[int, int]:
    table = _read_csv("nr_lifting_sizes.csv")
    return {int(z): int(ils) for ils, _a, z in table}


LIFTING_SIZES: tuple[int, ...] = tuple(sorted(_lifting_table()))
"""The 51 lifting sizes Z of TS 38.212 Table 5.3.2-1, ascending."""


def _check_base_graph(base_graph: Any) -> int:
    if base_graph not in (1, 2) or isinstance(base_graph, bool):
        raise ValueError(f"base_graph must be 1 or 2, got {base_graph!r}")
    return int(base_graph)


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def base_graph_matrix(base_graph: int, z: int) -> np.ndarray:
    """Shift matrix of ``base_graph`` lifted by ``z``: ``P = V mod z``, ``-1`` for zero blocks.

    Returns:
        ``int64`` array ``(46, 68)`` for BG1 or ``(42, 52)`` for BG2.
    """
    bg = _check_base_graph(base_graph)
    if z not in _lifting_table():
        raise ValueError(f"z={z} is not a 5G NR lifting size (TS 38.212 Table 5.3.2-1)")
    table = _shift_table(bg)
    p = _BG[bg]
    shifts = np.full((p.rows, p.cols), -1, dtype=np.int64)
    shifts[table[:, 0], table[:, 1]] = table[:, 2 + _lifting_table()[z]] % z
    return shifts


def _lifted_edges(base_graph: int, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the ones of the lifted H, rows ascending."""
    shifts = base_graph_matrix(base_graph, z)
    r_b, c_b = np.nonzero(shifts >= 0)
    i = np.arange(z)
    rows = (r_b[:, None] * z + i).ravel()
    # Row i of the circulant I(P) has its one at column (i + P) mod Z (identity shifted right).
    cols = (c_b[:, None] * z + (i + shifts[r_b, c_b][:, None]) % z).ravel()
    order = np.lexsort((cols, rows))
    return rows[order], cols[order]


@lru_cache(maxsize=16)
def lifted_parity_check(base_graph: int, z: int) -> Any:
    """The lifted parity-check matrix as a ``scipy.sparse.csr_matrix`` (uint8).

    Shape ``(46 z, 68 z)`` for BG1, ``(42 z, 52 z)`` for BG2; column ``j`` is codeword bit ``j``
    (the first ``2 z`` are punctured by rate matching). Treat it as read-only (it is cached).
    """
    import scipy.sparse  # only needed by callers who ask for H

    rows, cols = _lifted_edges(base_graph, z)
    p = _BG[base_graph]
    data = np.ones(rows.size, dtype=np.uint8)
    return scipy.sparse.csr_matrix((data, (rows, cols)), shape=(p.rows * z, p.cols * z))


# ----------------------------------------------------------------------------- parameters


def select_base_graph(tb_size: int, code_rate: float) -> int:
    """LDPC base graph of a transport block (TS 38.212 §7.2.2).

    Args:
        tb_size: A, the payload bits of the transport block (before its CRC).
        code_rate: target code rate R.

    Returns:
        2 if ``A <= 292``, or ``A <= 3824`` and ``R <= 0.67``, or ``R <= 0.25``; else 1.
    """
    a = _check_int(tb_size, "tb_size")
    if not 0.0 < code_rate <= 1.0:
        raise ValueError(f"code_rate must be in (0, 1], got {code_rate}")
    if a <= 292 or (a <= 3824 and code_rate <= 0.67) or code_rate <= 0.25:
        return 2
    return 1


def _num_info_columns(base_graph: int, b: int) -> int:
    """K_b of §5.2.2: 22 for BG1; for BG2 10, 9, 8 or 6 depending on B."""
    if base_graph == 1:
        return 22
    if b > 640:
        return 10
    if b > 560:
        return 9
    if b > 192:
        return 8
    return 6


def select_lifting_size(k_prime: int, base_graph: int, b: int | None = None) -> int:
    """Smallest lifting size Z with ``K_b * Z >= K'`` (§5.2.2).

    Args:
        k_prime: K', bits per code block without filler.
        base_graph: 1 or 2.
        b: B, the segmented block length that sets K_b for BG2 (defaults to ``k_prime``, which
            is exact for a single code block and for every segmented BG2 block).
    """
    bg = _check_base_graph(base_graph)
    k_prime = _check_int(k_prime, "k_prime")
    kb = _num_info_columns(bg, k_prime if b is None else b)
    for z in LIFTING_SIZES:
        if kb * z >= k_prime:
            return z
    raise ValueError(
        f"k={k_prime} bits do not fit one BG{bg} code block (at most {_BG[bg].k_cb}); "
        "segment the transport block first (see segment())"
    )


@dataclass(frozen=True)
class NRSegmentation:
    """Code block segmentation of one transport block (TS 38.212 §5.2.2).

    Attributes:
        base_graph: 1 or 2.
        b: B, transport block bits including the TB CRC (the input of segmentation).
        num_code_blocks: C.
        cb_crc_length: L, 24 (CRC-24B per block) when ``C > 1``, else 0.
        k_prime: K', bits per code block (data + CB-CRC), the ``k`` of :class:`NR5GLDPC`.
        z: lifting size Z_c.
        k_ldpc: K = 22 Z or 10 Z, encoder input length including filler bits.
        num_filler: F = K - K'.
        num_padding: zeros appended to the last block's data when ``C`` does not divide ``B``
            (the MATLAB/py3gpp convention; TS 38.214 transport block sizes never need it).
    """

    base_graph: int
    b: int
    num_code_blocks: int
    cb_crc_length: int
    k_prime: int
    z: int
    k_ldpc: int
    num_filler: int
    num_padding: int

    @property
    def data_bits_per_block(self) -> int:
        """K' - L: transport block bits carried by each code block."""
        return self.k_prime - self.cb_crc_length


def segmentation_info(b: int, base_graph: int) -> NRSegmentation:
    """Segmentation parameters for ``b`` = B bits (payload + TB CRC) on ``base_graph``."""
    bg = _check_base_graph(base_graph)
    b = _check_int(b, "b")
    k_cb = _BG[bg].k_cb
    if b <= k_cb:
        crc_len, c = 0, 1
    else:
        crc_len = CB_CRC_LENGTH
        c = math.ceil(b / (k_cb - crc_len))
    data_per_block = math.ceil(b / c)
    k_prime = data_per_block + crc_len
    z = select_lifting_size(k_prime, bg, b=b)
    k_ldpc = _BG[bg].kb_cols * z
    return NRSegmentation(
        base_graph=bg,
        b=b,
        num_code_blocks=c,
        cb_crc_length=crc_len,
        k_prime=k_prime,
        z=z,
        k_ldpc=k_ldpc,
        num_filler=k_ldpc - k_prime,
        num_padding=c * data_per_block - b,
    )


def _cb_crc() -> Any:
    try:
        from genjscc.core.fec.crc import CRC
    except ImportError as exc:  # pragma: no cover - crc.py ships with the package
        raise ImportError("segmenting into several code blocks needs genjscc.core.fec.crc") from exc
    return CRC("24B")


def segment(tb_bits: torch.Tensor, base_graph: int) -> torch.Tensor:
    """Split transport blocks (with TB CRC already attached) into code blocks.

    When ``C > 1`` each block gets a CRC-24B; the last block's data is zero-padded if ``C``
    does not divide B. Filler bits are not included: :class:`NR5GLDPC` adds them.

    Args:
        tb_bits: ``[..., B]`` bits (0/1).
        base_graph: 1 or 2 (see :func:`select_base_graph`).

    Returns:
        ``[..., C, K']`` code blocks, same dtype and device as ``tb_bits``.
    """
    if not isinstance(tb_bits, torch.Tensor) or tb_bits.ndim == 0:
        raise TypeError("tb_bits must be a torch.Tensor [..., B]")
    seg = segmentation_info(tb_bits.shape[-1], base_graph)
    _check_bits(tb_bits, seg.b, "tb_bits")
    if seg.num_padding:
        pad = tb_bits.new_zeros((*tb_bits.shape[:-1], seg.num_padding))
        tb_bits = torch.cat([tb_bits, pad], dim=-1)
    blocks = tb_bits.reshape(*tb_bits.shape[:-1], seg.num_code_blocks, seg.data_bits_per_block)
    if seg.cb_crc_length:  # the CRC works on integer bits; hand back the caller's dtype
        blocks = _cb_crc().attach(blocks.to(torch.uint8)).to(tb_bits.dtype)
    return blocks


def desegment(
    cb_bits: torch.Tensor, b: int, base_graph: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`segment`: check and strip CB-CRCs, concatenate, drop padding.

    Args:
        cb_bits: ``[..., C, K']`` decoded code block bits.
        b: B, the transport block length including its TB CRC.
        base_graph: 1 or 2.

    Returns:
        ``(tb_bits [..., B], cb_crc_ok [..., C] bool)``; with a single code block there is no
        CB-CRC and ``cb_crc_ok`` is all True (check the TB CRC instead).
    """
    seg = segmentation_info(b, base_graph)
    want = (seg.num_code_blocks, seg.k_prime)
    if not isinstance(cb_bits, torch.Tensor) or tuple(cb_bits.shape[-2:]) != want:
        shape = tuple(cb_bits.shape) if isinstance(cb_bits, torch.Tensor) else type(cb_bits)
        raise ValueError(f"cb_bits must be [..., {want[0]}, {want[1]}] for B={b}, got {shape}")
    _check_bits(cb_bits, seg.k_prime, "cb_bits")
    if seg.cb_crc_length:
        ok = _cb_crc().check(cb_bits.to(torch.uint8))
        data = cb_bits[..., : seg.data_bits_per_block]
    else:
        ok = torch.ones(cb_bits.shape[:-1], dtype=torch.bool, device=cb_bits.device)
        data = cb_bits
    tb = data.reshape(*data.shape[:-2], -1)[..., :b]
    return tb, ok


def rate_match_lengths(
    g: int, num_code_blocks: int, modulation_order: int, num_layers: int = 1
) -> list[int]:
    """E_r for each code block of a transport block with G coded bits (§5.4.2.1).

    All blocks get ``N_L Q_m floor(G / (N_L Q_m C))`` or one symbol-group more; the longer ones
    are the last ``G / (N_L Q_m) mod C`` blocks.
    """
    g = _check_int(g, "g")
    c = _check_int(num_code_blocks, "num_code_blocks")
    qm = _check_modulation_order(modulation_order)
    step = _check_int(num_layers, "num_layers") * qm
    if g % step:
        raise ValueError(f"g={g} must be a multiple of num_layers * modulation_order = {step}")
    symbols = g // step
    short = symbols // c
    return [step * (short + (r >= c - symbols % c)) for r in range(c)]


def _check_modulation_order(qm: Any) -> int:
    if qm not in MODULATION_ORDERS or isinstance(qm, bool):
        raise ValueError(f"modulation_order must be one of {MODULATION_ORDERS}, got {qm!r}")
    return int(qm)


def _circular_buffer_length(
    base_graph: int, z: int, tbs_lbrm: int | None, num_code_blocks: int
) -> int:
    """N_cb: N, or min(N, N_ref) with limited-buffer rate matching (§5.4.2.1)."""
    n = _BG[base_graph].n_over_z * z
    if tbs_lbrm is None:
        return n
    n_ref = (tbs_lbrm * _R_LBRM[1]) // (num_code_blocks * _R_LBRM[0])
    return min(n, n_ref)


def _k0(base_graph: int, rv: int, n_cb: int, z: int) -> int:
    p = _BG[base_graph]
    return (p.k0_factors[rv] * n_cb) // (p.n_over_z * z) * z


def rate_matching_index(
    k_prime: int, z: int, base_graph: int, e: int, rv: int, modulation_order: int, n_cb: int
) -> np.ndarray:
    """Codeword position sent as each of the E rate-matched, interleaved bits (§5.4.2).

    The circular buffer ``d`` is the codeword without its first ``2 z`` bits, cut to ``n_cb``
    bits; reading starts at ``k0`` and skips the filler bits (positions ``K'..K-1`` of the
    codeword); bits repeat once the buffer wraps. Interleaving then writes the selected bits
    row-wise into ``Q_m`` rows and reads them column-wise.

    Returns:
        ``int64 [E]``: ``tx = codeword[..., index]``.
    """
    bg = _check_base_graph(base_graph)
    qm = _check_modulation_order(modulation_order)
    if e % qm:
        raise ValueError(f"e={e} must be a multiple of modulation_order={qm}")
    k_ldpc = _BG[bg].kb_cols * z
    d_pos = np.arange(n_cb)
    filler = (d_pos >= k_prime - 2 * z) & (d_pos < k_ldpc - 2 * z)
    order = np.roll(d_pos, -_k0(bg, rv, n_cb, z))
    order = order[~filler[order]]
    if order.size == 0:
        raise ValueError("the circular buffer holds only filler bits: increase n_cb")
    selected = np.tile(order, -(-e // order.size))[:e] + 2 * z
    return selected.reshape(qm, e // qm).T.reshape(-1).astype(np.int64)


# ----------------------------------------------------------------------------- encoder


@dataclass(frozen=True)
class _EncoderPlan:
    """Precomputed pieces of the structured encoder for one (base graph, Z)."""

    z: int
    k_ldpc: int
    core_rows: tuple[np.ndarray, np.ndarray]  # lifted edges of rows 0..3 on systematic columns
    ext_rows: tuple[np.ndarray, np.ndarray]  # lifted edges of rows >= 4, columns < K + 4Z
    sum_shift: int  # column K_b of the summed core rows is I(sum_shift)
    steps: tuple[tuple[int, int, int, tuple[tuple[int, int], ...]], ...]


@lru_cache(maxsize=16)
def _encoder_plan(base_graph: int, z: int) -> _EncoderPlan:
    p = _BG[base_graph]
    shifts = base_graph_matrix(base_graph, z)
    kb = p.kb_cols
    core = shifts[:_CORE_ROWS, kb : kb + _CORE_ROWS]
    if (shifts[:_CORE_ROWS, kb + _CORE_ROWS :] >= 0).any():
        raise AssertionError("base graph core rows reach the extension columns")
    # Summing the 4 core rows cancels the double-diagonal columns; column 0 must leave one
    # circulant I(s_x), giving p_0 = I(-s_x) * (sum of the systematic parts of the 4 rows).
    odd = []
    for j in range(_CORE_ROWS):
        counts = np.bincount(core[:, j][core[:, j] >= 0], minlength=z) % 2
        odd.append(np.flatnonzero(counts))
    if odd[0].size != 1 or any(o.size for o in odd[1:]):
        raise AssertionError("base graph core is not of the expected double-diagonal form")
    # Then solve, one row at a time, each row that has a single unknown parity block left.
    known, used, steps = {0}, set(), []
    while len(known) < _CORE_ROWS:
        for r in range(_CORE_ROWS):
            cols = [j for j in range(_CORE_ROWS) if core[r, j] >= 0]
            unknown = [j for j in cols if j not in known]
            if r in used or len(unknown) != 1:
                continue
            j = unknown[0]
            others = tuple((jj, int(core[r, jj])) for jj in cols if jj != j)
            steps.append((j, r, int(core[r, j]), others))
            known.add(j)
            used.add(r)
            break
        else:
            raise AssertionError("base graph core cannot be solved block by block")
    rows, cols = _lifted_edges(base_graph, z)
    k_ldpc = kb * z
    in_core = rows < _CORE_ROWS * z
    core_sys = in_core & (cols < k_ldpc)
    # Row 4 + i of the extension holds I(0) at parity column 4 + i and nothing else among the
    # parity columns >= 4, so that parity bit is the row's sum over the first K + 4Z bits.
    ext = ~in_core & (cols < k_ldpc + _CORE_ROWS * z)
    return _EncoderPlan(
        z=z,
        k_ldpc=k_ldpc,
        core_rows=(rows[core_sys], cols[core_sys]),
        ext_rows=(rows[ext] - _CORE_ROWS * z, cols[ext]),
        sum_shift=int(odd[0][0]),
        steps=tuple(steps),
    )


def _sparse(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], device: Any) -> Any:
    """float32 sparse COO matrix with ones at (rows, cols), given lexsorted and unique."""
    # Checked here in numpy; torch's own invariant checks cost more than the encoding.
    if rows.size:
        low, high = min(rows.min(), cols.min()), (rows.max(), cols.max())
        if low < 0 or high[0] >= shape[0] or high[1] >= shape[1]:
            raise AssertionError("sparse matrix index out of range")
    idx = torch.as_tensor(np.stack([rows, cols]), dtype=torch.int64)
    vals = torch.ones(rows.size, dtype=torch.float32)
    mat = torch.sparse_coo_tensor(idx, vals, shape, is_coalesced=True, check_invariants=False)
    return mat.to(device)


def _circ(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``I(shift) x`` on the last dimension: ``y_i = x_{(i + shift) mod Z}``."""
    return torch.roll(x, -shift, dims=-1) if shift else x


class NR5GLDPC:
    """5G NR LDPC code block encoder with rate matching, and LLR rate recovery.

    Args:
        k: K', information bits per code block (payload plus any CRC; the transport-block
            CRC-24A/16 and CB CRC-24B are the caller's, see :func:`segment`).
        e: E, bits after rate matching (a multiple of ``modulation_order``). Give either ``e``
            or ``code_rate``.
        code_rate: target rate; sets ``e = Q_m * round(k / (code_rate * Q_m))``.
        modulation_order: Q_m, bits per symbol of the interleaver (1, 2, 4, 6, 8 or 10).
        rv: redundancy version 0..3 (start position k0 in the circular buffer).
        base_graph: 1 or 2; None selects it by §7.2.2 with A = ``k`` and R = ``k / e`` (pass
            :func:`select_base_graph` of the real transport block size to follow the spec
            exactly when a TB CRC is included in ``k``).
        tbs_lbrm: transport block size for limited-buffer rate matching; None (default) uses
            the full circular buffer ``N_cb = N``.
        num_code_blocks: C of the transport block, used only with ``tbs_lbrm``.

    Attributes:
        k, e, n, m, z, base_graph, k_ldpc (K), num_filler (F), n_cb, k0, rv,
        modulation_order, code_rate (``k / e``), info_positions (``arange(k)``), name.
    """

    def __init__(
        self,
        k: int,
        e: int | None = None,
        *,
        code_rate: float | None = None,
        modulation_order: int = 2,
        rv: int = 0,
        base_graph: int | None = None,
        tbs_lbrm: int | None = None,
        num_code_blocks: int = 1,
    ) -> None:
        self.k = _check_int(k, "k")
        self.modulation_order = qm = _check_modulation_order(modulation_order)
        if (e is None) == (code_rate is None):
            raise ValueError("give exactly one of e (rate-matched length) and code_rate")
        if e is None:
            if not 0.0 < float(code_rate) <= 1.0:
                raise ValueError(f"code_rate must be in (0, 1], got {code_rate}")
            e = qm * max(1, round(self.k / (float(code_rate) * qm)))
        self.e = _check_int(e, "e")
        if self.e % qm:
            raise ValueError(f"e={self.e} must be a multiple of modulation_order={qm}")
        if rv not in (0, 1, 2, 3) or isinstance(rv, bool):
            raise ValueError(f"rv must be 0, 1, 2 or 3, got {rv!r}")
        self.rv = int(rv)
        if base_graph is None:
            base_graph = select_base_graph(self.k, min(1.0, self.k / self.e))
        self.base_graph = bg = _check_base_graph(base_graph)
        if self.k > _BG[bg].k_cb:
            raise ValueError(
                f"k={self.k} exceeds the BG{bg} code block limit K_cb={_BG[bg].k_cb}: "
                "segment the transport block (segment()) or use base graph 1"
            )
        self.z = z = select_lifting_size(self.k, bg)
        if self.k < 2 * z:
            raise ValueError(f"k={self.k} is too short for Z={z}: k must be >= 2 Z")
        p = _BG[bg]
        self.k_ldpc = p.kb_cols * z
        self.num_filler = self.k_ldpc - self.k
        self.n = p.cols * z
        self.m = p.rows * z
        self.tbs_lbrm = None if tbs_lbrm is None else _check_int(tbs_lbrm, "tbs_lbrm")
        c = _check_int(num_code_blocks, "num_code_blocks")
        self.n_cb = _circular_buffer_length(bg, z, self.tbs_lbrm, c)
        self.k0 = _k0(bg, self.rv, self.n_cb, z)
        self.info_positions = np.arange(self.k)
        self._rm_index = rate_matching_index(self.k, z, bg, self.e, self.rv, qm, self.n_cb)
        self._plan = _encoder_plan(bg, z)
        self._device_cache: dict[str, dict[str, Any]] = {}

    # -- construction from a string -------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: str) -> NR5GLDPC:
        """Build from a spec string ``"5gnr:key=value:..."`` (case-insensitive).

        Keys: ``k`` (required); ``e`` (alias ``n``) or ``rate`` (alias ``r``), exactly one;
        ``bg`` (1 or 2, or the bare tokens ``bg1``/``bg2``); ``qm`` (alias
        ``modulation_order``, default 2); ``rv`` (default 0); ``tbs_lbrm``. Fields may be
        separated by ``:`` or ``,``. Examples: ``"5gnr:bg2:k=512:e=1024"``,
        ``"5gnr:k=4000:rate=0.75:qm=6:rv=2"``.
        """
        tokens = [t.strip().lower() for t in spec.replace(",", ":").split(":") if t.strip()]
        if not tokens or tokens[0] != "5gnr":
            raise ValueError(f"a 5G NR code spec starts with '5gnr:', got {spec!r}")
        aliases = {"n": "e", "r": "rate", "modulation_order": "qm", "base_graph": "bg"}
        fields: dict[str, str] = {}
        for tok in tokens[1:]:
            if tok in ("bg1", "bg2"):
                key, value = "bg", tok[2]
            elif "=" in tok:
                key, value = (s.strip() for s in tok.split("=", 1))
                key = aliases.get(key, key)
            else:
                raise ValueError(f"bad field {tok!r} in 5G NR code spec {spec!r}")
            if key not in ("k", "e", "rate", "bg", "qm", "rv", "tbs_lbrm") or key in fields:
                raise ValueError(f"unknown or repeated field {key!r} in 5G NR code spec {spec!r}")
            fields[key] = value
        if "k" not in fields:
            raise ValueError(f"5G NR code spec {spec!r} needs k=<information bits>")
        try:
            return cls(
                int(fields["k"]),
                int(fields["e"]) if "e" in fields else None,
                code_rate=float(fields["rate"]) if "rate" in fields else None,
                modulation_order=int(fields.get("qm", 2)),
                rv=int(fields.get("rv", 0)),
                base_graph=int(fields["bg"]) if "bg" in fields else None,
                tbs_lbrm=int(fields["tbs_lbrm"]) if "tbs_lbrm" in fields else None,
            )
        except ValueError as exc:
            raise ValueError(f"invalid 5G NR code spec {spec!r}: {exc}") from exc

    @property
    def name(self) -> str:
        """Canonical spec string; ``NR5GLDPC.from_spec(code.name)`` rebuilds the code."""
        extra = f":tbs_lbrm={self.tbs_lbrm}" if self.tbs_lbrm is not None else ""
        return (
            f"5gnr:bg{self.base_graph}:k={self.k}:e={self.e}:qm={self.modulation_order}"
            f":rv={self.rv}{extra}"
        )

    @property
    def code_rate(self) -> float:
        """``k / e``: information bits per transmitted bit."""
        return self.k / self.e

    @property
    def H(self) -> Any:
        """Lifted parity-check matrix, ``scipy.sparse.csr_matrix`` uint8 ``(m, n)``.

        Columns follow the full codeword of :meth:`encode_codeword`; ``H.nonzero()`` gives the
        edges. Shared between codes of the same (base graph, Z): do not modify it.
        """
        return lifted_parity_check(self.base_graph, self.z)

    @property
    def filler_positions(self) -> np.ndarray:
        """Codeword positions ``k..k_ldpc-1`` of the filler bits (zeros, never sent)."""
        return np.arange(self.k, self.k_ldpc)

    @property
    def rate_matching_index(self) -> np.ndarray:
        """``int64 [e]``: codeword position of each transmitted bit (see module function)."""
        return self._rm_index.copy()

    # -- device tensors ---------------------------------------------------------------------

    def _tensors(self, device: torch.device) -> dict[str, Any]:
        key = str(device)
        if key not in self._device_cache:
            plan, z = self._plan, self.z
            n_ext = self.m - _CORE_ROWS * z
            self._device_cache[key] = {
                "core": _sparse(*plan.core_rows, (_CORE_ROWS * z, self.k_ldpc), device),
                "ext": _sparse(*plan.ext_rows, (n_ext, self.k_ldpc + _CORE_ROWS * z), device),
                "rm": torch.as_tensor(self._rm_index, device=device),
            }
        return self._device_cache[key]

    # -- encoding ---------------------------------------------------------------------------

    def encode_codeword(self, info_bits: torch.Tensor) -> torch.Tensor:
        """Full LDPC codeword before rate matching (TS 38.212 §5.3.2).

        Args:
            info_bits: ``[..., k]`` bits (0/1, any real dtype), any device.

        Returns:
            ``[..., n]`` codeword ``c`` with ``H c = 0 mod 2``: ``c[..., :k]`` = info bits,
            ``c[..., k:k_ldpc]`` = filler bits (0), then the parity bits. Same dtype/device.
        """
        _check_bits(info_bits, self.k, "info_bits")
        lead = info_bits.shape[:-1]
        t = self._tensors(info_bits.device)
        z, k_ldpc = self.z, self.k_ldpc
        # One float32 buffer, filled in place: sums of bits stay exact and sparse.mm needs floats.
        cw = torch.empty(math.prod(lead), self.n, dtype=torch.float32, device=info_bits.device)
        cw[:, : self.k] = info_bits.reshape(-1, self.k)
        cw[:, self.k : k_ldpc] = 0.0  # filler bits are encoded as zeros
        lam = torch.sparse.mm(t["core"], cw[:, :k_ldpc].T).T.reshape(-1, _CORE_ROWS, z)
        core = cw[:, k_ldpc : k_ldpc + _CORE_ROWS * z].view(-1, _CORE_ROWS, z)
        core[:, 0] = torch.fmod(_circ(lam.sum(dim=1), -self._plan.sum_shift), 2.0)
        for j, r, shift, others in self._plan.steps:
            acc = lam[:, r].clone()
            for jj, sh in others:
                acc += _circ(core[:, jj], sh)
            core[:, j] = torch.fmod(_circ(acc, -shift), 2.0)
        ext = torch.sparse.mm(t["ext"], cw[:, : k_ldpc + _CORE_ROWS * z].T).T
        cw[:, k_ldpc + _CORE_ROWS * z :] = torch.fmod(ext, 2.0)
        return cw.to(info_bits.dtype).reshape(*lead, self.n)

    def rate_match(self, codeword: torch.Tensor) -> torch.Tensor:
        """Bit selection and interleaving: ``[..., n]`` codeword -> ``[..., e]`` bits to send."""
        if not isinstance(codeword, torch.Tensor) or codeword.ndim == 0:
            raise TypeError("codeword must be a torch.Tensor [..., n]")
        if codeword.shape[-1] != self.n:
            raise ValueError(f"codeword must have last dimension n={self.n}, got {codeword.shape}")
        return codeword[..., self._tensors(codeword.device)["rm"]]

    def encode(self, info_bits: torch.Tensor) -> torch.Tensor:
        """Encode and rate-match: ``[..., k]`` info bits -> ``[..., e]`` bits (same dtype)."""
        return self.rate_match(self.encode_codeword(info_bits))

    __call__ = encode

    # -- receiver side ----------------------------------------------------------------------

    def rate_recover(self, llr: torch.Tensor, filler_llr: float = FILLER_LLR) -> torch.Tensor:
        """LLRs of the full codeword from the ``e`` received LLRs (inverse of rate matching).

        Deinterleaves, puts each LLR back at its codeword position and adds up repeated bits.
        Punctured bits (the first 2 Z) and bits never sent get 0; filler bits get
        ``filler_llr`` (> 0: they are known zeros, ``llr = ln P(0)/P(1)``).

        Args:
            llr: ``[..., e]`` floating LLRs.
            filler_llr: LLR for the filler bits.

        Returns:
            ``[..., n]`` LLRs aligned with the columns of :attr:`H`, same dtype/device.
        """
        if not isinstance(llr, torch.Tensor) or not llr.is_floating_point():
            raise TypeError("llr must be a floating-point torch.Tensor [..., e]")
        if llr.ndim == 0 or llr.shape[-1] != self.e:
            raise ValueError(f"llr must have last dimension e={self.e}, got {tuple(llr.shape)}")
        lead = llr.shape[:-1]
        flat = llr.reshape(-1, self.e)
        out = flat.new_zeros(flat.shape[0], self.n)
        out.index_add_(1, self._tensors(llr.device)["rm"], flat)
        out[:, self.k : self.k_ldpc] = filler_llr
        return out.reshape(*lead, self.n)

    def syndrome(self, bits: torch.Tensor) -> torch.Tensor:
        """``H c mod 2`` for ``bits`` ``[..., n]``; returns ``[..., m]`` (zero for codewords)."""
        _check_bits(bits, self.n, "bits")
        key = f"{bits.device}:h"
        if key not in self._device_cache:
            rows, cols = _lifted_edges(self.base_graph, self.z)
            self._device_cache[key] = {"h": _sparse(rows, cols, (self.m, self.n), bits.device)}
        h = self._device_cache[key]["h"]
        flat = bits.reshape(-1, self.n).to(torch.float32)
        syn = torch.remainder(torch.sparse.mm(h, flat.T).T, 2.0)
        return syn.to(bits.dtype).reshape(*bits.shape[:-1], self.m)

    def __repr__(self) -> str:
        return (
            f"NR5GLDPC({self.name!r}, z={self.z}, n={self.n}, k_ldpc={self.k_ldpc}, "
            f"n_cb={self.n_cb}, k0={self.k0})"
        )

