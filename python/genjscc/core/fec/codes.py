"""Binary linear block codes from parity-check matrices: file loaders, GF(2) algebra, encoding.

The shipped benchmark set (the 15 ECCT matrices, ``genjscc/data/codes``, see its README.md and
SOURCES.md) is available by name: :func:`list_codes` lists the names (file stems such as
``"LDPC_N49_K24"`` or ``"POLAR_N64_K32"``); :func:`load_parity_check` and :func:`get_code` accept
them case-insensitively, or a path to an ``.alist`` or dense 0/1 ``.txt`` file.

Code specifications understood by :func:`get_code` (and so by ``genjscc ber --code``):

* a shipped name, e.g. ``"BCH_N63_K45"``;
* a file path, e.g. ``"my_code.alist"`` or ``"H.txt"`` (dense: one row of H per line);
* a 5G NR LDPC spec, e.g. ``"5gnr:bg2:k=512:e=1024"``; see
  :meth:`genjscc.core.fec.ldpc5g.NR5GLDPC.from_spec`.

Every code object offers the same interface to simulation loops::

    tx_bits = code.encode(info_bits)        # [..., k] -> [..., e] bits sent on the channel
    llr_cw = code.rate_recover(llr_tx)      # [..., e] -> [..., n] LLRs aligned with H's columns
    info_hat = cw_hat[..., code.info_positions]

with ``code.H`` (``m x n``; ``H.nonzero()`` gives its edges), ``code.n``, ``code.k``, ``code.e``
and ``code.code_rate = k / e``. For a plain linear block code ``e == n`` and rate recovery is the
identity. LLRs follow docs/conventions.md: ``llr = ln P(b=0)/P(b=1)``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from genjscc.core.fec.ldpc5g import NR5GLDPC

__all__ = [
    "Code",
    "LinearBlockCode",
    "get_code",
    "gf2_rank",
    "gf2_row_reduce",
    "list_codes",
    "load_alist",
    "load_dense",
    "load_parity_check",
    "systematic_generator",
]

_CODE_SUFFIXES = (".alist", ".txt")


@runtime_checkable
class Code(Protocol):
    """What a channel code offers the encoders, decoders and simulation loops (module
    docstring): :class:`LinearBlockCode` and :class:`~genjscc.core.fec.ldpc5g.NR5GLDPC` are
    ones; any object with these members works too.

    Attributes:
        name: label used in reports.
        n, k, e, m: codeword bits (columns of H), information bits, bits on the channel per
            codeword (after rate matching; ``e == n`` without it), rows of H.
        H: parity-check matrix ``(m, n)``, 0/1.
        info_positions: the columns of H that carry the information bits, ``[k]``.
    """

    name: str
    n: int
    k: int
    e: int
    m: int
    info_positions: np.ndarray

    @property
    def H(self) -> Any: ...

    @property
    def code_rate(self) -> float: ...

    def encode(self, info_bits: torch.Tensor) -> torch.Tensor:
        """``[..., k]`` information bits -> ``[..., e]`` bits sent on the channel."""
        ...

    def rate_recover(self, llr: torch.Tensor) -> torch.Tensor:
        """``[..., e]`` channel LLRs -> ``[..., n]`` LLRs aligned with the columns of H."""
        ...

    def syndrome(self, bits: torch.Tensor) -> torch.Tensor:
        """``[..., n]`` bits -> ``[..., m]`` parity checks (all zero for a codeword)."""
        ...


# ----------------------------------------------------------------------------- file loaders


def load_alist(path: str | os.PathLike) -> np.ndarray:
    """Read a parity-check matrix in MacKay's ``alist`` format.

    Layout: ``N M`` / max column and row weights / N column weights / M row weights / N lines
    of 1-based row indices (one per column) / M lines of 1-based column indices (one per row).
    Index lists may be padded with ``0`` entries, which are skipped. When the row section is
    present it must agree with the column section.

    Returns:
        ``H`` as a ``uint8`` array of shape ``(M, N)``.
    """
    text = Path(path).read_text()
    return _parse_alist(text, str(path))


def _parse_alist(text: str, where: str) -> np.ndarray:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    try:
        n, m = (int(v) for v in lines[0][:2])
        col_weights = [int(v) for v in lines[2]]
        row_weights = [int(v) for v in lines[3]]
        col_lists = [[int(v) for v in line] for line in lines[4 : 4 + n]]
        row_lists = [[int(v) for v in line] for line in lines[4 + n : 4 + n + m]]
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{where}: not a valid alist file ({exc})") from exc
    if len(col_weights) != n or len(row_weights) != m or len(col_lists) != n:
        raise ValueError(f"{where}: alist header says {n} columns and {m} rows, the body disagrees")
    h = np.zeros((m, n), dtype=np.uint8)
    for j, rows in enumerate(col_lists):
        rows = [r for r in rows if r > 0]
        if any(r > m for r in rows) or len(set(rows)) != len(rows):
            raise ValueError(f"{where}: column {j + 1} has an out-of-range or repeated row index")
        if len(rows) != col_weights[j]:
            raise ValueError(
                f"{where}: column {j + 1} has weight {len(rows)}, declared {col_weights[j]}"
            )
        h[np.asarray(rows, dtype=np.int64) - 1, j] = 1
    if row_lists:  # optional second half: must describe the same matrix
        if len(row_lists) != m:
            raise ValueError(f"{where}: alist row section has {len(row_lists)} lines, expected {m}")
        h_rows = np.zeros_like(h)
        for i, cols in enumerate(row_lists):
            cols = [c for c in cols if c > 0]
            if any(c > n for c in cols):
                raise ValueError(f"{where}: row {i + 1} has a column index > {n}")
            h_rows[i, np.asarray(cols, dtype=np.int64) - 1] = 1
        if not np.array_equal(h, h_rows):
            raise ValueError(f"{where}: the alist column and row sections disagree")
    return h


def load_dense(path: str | os.PathLike) -> np.ndarray:
    """Read a dense 0/1 parity-check matrix: one row of H per line, whitespace-separated.

    Returns:
        ``H`` as a ``uint8`` array of shape ``(m, n)``.
    """
    try:
        h = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a dense 0/1 matrix ({exc})") from exc
    if h.size == 0 or not np.isin(h, (0, 1)).all():
        raise ValueError(f"{path}: a dense parity-check file must hold a non-empty 0/1 matrix")
    return h.astype(np.uint8)


def _codes_dir() -> resources.abc.Traversable:
    return resources.files("genjscc") / "data" / "codes"


@lru_cache(maxsize=1)
def _shipped_files() -> dict[str, str]:
    """Map lower-cased stem -> file name for the shipped code set."""
    files = {}
    for entry in _codes_dir().iterdir():
        if entry.name.endswith(_CODE_SUFFIXES):
            files[entry.name.rsplit(".", 1)[0].lower()] = entry.name
    return files


def list_codes() -> list[str]:
    """Names (file stems) of the shipped benchmark codes, e.g. ``"LDPC_N49_K24"``."""
    return sorted(name.rsplit(".", 1)[0] for name in _shipped_files().values())


def _shipped_key(name: str | os.PathLike) -> str | None:
    """Lower-cased stem of a shipped code matching ``name`` (suffix optional), else None."""
    key = str(name).strip().lower()
    for suffix in _CODE_SUFFIXES:
        key = key.removesuffix(suffix)
    return key if key in _shipped_files() else None


def load_parity_check(name_or_path: str | os.PathLike) -> np.ndarray:
    """Load H from a shipped code name (case-insensitive) or from an ``.alist``/dense file.

    A path ending in ``.alist`` is read with :func:`load_alist`; any other existing file with
    :func:`load_dense`.

    Returns:
        ``H`` as a ``uint8`` array ``(m, n)``; rows may be linearly dependent (kept as given,
        since extra rows help belief propagation).
    """
    path = Path(name_or_path)
    if path.is_file():
        return load_alist(path) if path.suffix.lower() == ".alist" else load_dense(path)
    key = _shipped_key(name_or_path)
    files = _shipped_files()
    if key is None:
        raise ValueError(
            f"unknown code {str(name_or_path)!r}: not a file and not a shipped code. "
            f"Shipped codes: {', '.join(list_codes())}; or pass a path to an .alist or "
            "dense .txt file, or a 5G NR spec such as '5gnr:bg2:k=512:e=1024'"
        )
    entry = _codes_dir() / files[key]
    if files[key].endswith(".alist"):
        return _parse_alist(entry.read_text(), files[key])
    with resources.as_file(entry) as real_path:
        return load_dense(real_path)


# ----------------------------------------------------------------------------- GF(2) algebra


def _as_binary_matrix(h: np.ndarray | torch.Tensor) -> np.ndarray:
    a = h.detach().cpu().numpy() if isinstance(h, torch.Tensor) else np.asarray(h)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"a parity-check matrix must be a non-empty 2-D array, got {a.shape}")
    if not np.isin(a, (0, 1)).all():
        raise ValueError("a parity-check matrix must contain only 0 and 1")
    return a.astype(np.uint8)


def gf2_row_reduce(h: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form of ``h`` over GF(2), pivoting on columns from the right.

    Pivots are searched from the last column to the first, so a matrix ``[A | I]`` keeps its
    identity part as pivots and the leading columns become the free (information) positions.

    Returns:
        ``(r, pivots)``: ``r`` is ``uint8 (rank, n)`` with ``r[i, pivots[i]] = 1`` and zeros in
        every other row of column ``pivots[i]``; ``pivots`` lists the pivot columns.
    """
    a = _as_binary_matrix(h)
    m, n = a.shape
    packed = np.packbits(a, axis=1)  # rows as bit strings: 8x less work per XOR
    pivots: list[int] = []
    r = 0
    for c in range(n - 1, -1, -1):
        if r == m:
            break
        col = (packed[:, c >> 3] >> (7 - (c & 7))) & 1
        candidates = np.flatnonzero(col[r:]) + r
        if candidates.size == 0:
            continue
        p = candidates[0]
        if p != r:
            packed[[r, p]] = packed[[p, r]]
            col[[r, p]] = col[[p, r]]
        col[r] = 0
        packed[col.astype(bool)] ^= packed[r]
        pivots.append(c)
        r += 1
    reduced = np.unpackbits(packed[:r], axis=1, count=n)
    return reduced, pivots


def gf2_rank(h: np.ndarray) -> int:
    """Rank of a binary matrix over GF(2)."""
    return len(gf2_row_reduce(h)[1])


def systematic_generator(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Systematic generator matrix of the code ``{c : H c = 0 mod 2}``.

    No columns are permuted: the code stays the one H defines. Instead the information bits sit
    at ``info_positions`` (the non-pivot columns of :func:`gf2_row_reduce`), where
    ``G[:, info_positions]`` is the identity, so ``(u @ G mod 2)[info_positions] == u``.

    Returns:
        ``(G, info_positions)``: ``G`` is ``uint8 (k, n)`` with ``G H^T = 0 mod 2`` and
        ``k = n - rank(H)``; ``info_positions`` is a sorted ``int64`` array of length ``k``.
    """
    reduced, pivots = gf2_row_reduce(h)
    n = reduced.shape[1]
    info = np.setdiff1d(np.arange(n), np.asarray(pivots, dtype=np.int64))
    g = np.zeros((info.size, n), dtype=np.uint8)
    g[np.arange(info.size), info] = 1
    # Row i of the reduced H reads c[pivots[i]] = sum_j reduced[i, info[j]] u[j] (mod 2).
    if pivots:
        g[:, pivots] = reduced[:, info].T
    return g, info.astype(np.int64)


# ----------------------------------------------------------------------------- the code object


def _check_bits(bits: torch.Tensor, length: int, what: str) -> None:
    if not isinstance(bits, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(bits).__name__}")
    if bits.ndim == 0 or bits.shape[-1] != length:
        raise ValueError(f"{what} must have last dimension {length}, got shape {tuple(bits.shape)}")
    if bits.is_complex():
        raise TypeError(f"{what} must hold bits (0/1), got a complex tensor")
    if bits.numel() and bool(((bits != 0) & (bits != 1)).any()):
        raise ValueError(f"{what} must contain only 0 and 1")


def _mod2_matmul(bits: torch.Tensor, matrix_t: torch.Tensor) -> torch.Tensor:
    """``bits @ matrix_t mod 2`` in float32 (exact: sums stay far below 2**24), input dtype out."""
    out = torch.remainder(bits.to(torch.float32) @ matrix_t, 2.0)
    return out.to(bits.dtype)


class LinearBlockCode:
    """A binary linear block code given by its parity-check matrix H (``m x n``).

    ``H`` may have more rows than ``n - k`` (the shipped ``LDPC_*`` matrices do): the extra,
    dependent rows are kept because belief propagation uses them; ``k = n - rank_GF2(H)``.
    Encoding is systematic on :attr:`info_positions` (see :func:`systematic_generator`):
    ``encode(u)[..., info_positions] == u``.

    Args:
        H: binary matrix ``(m, n)`` (numpy, torch or nested lists).
        name: label used in reports; defaults to ``"code_n{n}_k{k}"``.
    """

    def __init__(self, H: np.ndarray | torch.Tensor, name: str | None = None) -> None:
        h = _as_binary_matrix(H)
        g, info = systematic_generator(h)
        self.H: np.ndarray = h
        self.G: np.ndarray = g
        self.info_positions: np.ndarray = info
        self.m, self.n = h.shape
        self.k = int(info.size)
        if self.k == 0:
            raise ValueError("H has full column rank: the code has no information bits (k = 0)")
        self.e = self.n  # bits on the channel per codeword (no rate matching)
        self.name = name or f"code_n{self.n}_k{self.k}"
        self._device_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_name(cls, name_or_path: str | os.PathLike) -> LinearBlockCode:
        """Build from a shipped code name (case-insensitive) or an ``.alist``/dense file path."""
        h = load_parity_check(name_or_path)
        path = Path(name_or_path)
        if path.is_file():
            return cls(h, name=path.stem)
        stem = _shipped_files()[_shipped_key(name_or_path)]
        return cls(h, name=stem.rsplit(".", 1)[0])

    @property
    def code_rate(self) -> float:
        """``k / n`` (information bits per coded bit)."""
        return self.k / self.n

    @property
    def parity_positions(self) -> np.ndarray:
        """Codeword positions that are not information positions (sorted)."""
        return np.setdiff1d(np.arange(self.n), self.info_positions)

    def _matrices(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._device_cache:
            g_t = torch.as_tensor(self.G.T.astype(np.float32), device=device).T.contiguous()
            h_t = torch.as_tensor(self.H.T.astype(np.float32), device=device).contiguous()
            self._device_cache[key] = (g_t, h_t)
        return self._device_cache[key]

    def encode(self, info_bits: torch.Tensor) -> torch.Tensor:
        """Systematic encoding ``c = u G mod 2``.

        Args:
            info_bits: ``[..., k]`` bits (0/1, any real dtype), on any device.

        Returns:
            ``[..., n]`` codewords, same dtype and device as ``info_bits``.
        """
        _check_bits(info_bits, self.k, "info_bits")
        g, _ = self._matrices(info_bits.device)
        return _mod2_matmul(info_bits, g)

    def syndrome(self, bits: torch.Tensor) -> torch.Tensor:
        """``H c mod 2`` of ``bits [..., n]``: ``[..., m]``, all zero for codewords."""
        _check_bits(bits, self.n, "bits")
        _, h_t = self._matrices(bits.device)
        return _mod2_matmul(bits, h_t)

    def rate_recover(self, llr: torch.Tensor) -> torch.Tensor:
        """Identity (no rate matching): checks that ``llr`` is ``[..., n]`` and returns it."""
        if not isinstance(llr, torch.Tensor) or llr.ndim == 0 or llr.shape[-1] != self.n:
            shape = tuple(llr.shape) if isinstance(llr, torch.Tensor) else type(llr).__name__
            raise ValueError(f"llr must be a tensor with last dimension {self.n}, got {shape}")
        return llr

    def __repr__(self) -> str:
        return f"LinearBlockCode(name={self.name!r}, n={self.n}, k={self.k}, m={self.m})"


def get_code(spec: str | os.PathLike) -> LinearBlockCode | NR5GLDPC:
    """Build a code from a shipped name, a file path, or a 5G NR spec string.

    ``"5gnr:..."`` specs return a :class:`genjscc.core.fec.ldpc5g.NR5GLDPC` (with rate
    matching; see :meth:`~genjscc.core.fec.ldpc5g.NR5GLDPC.from_spec`); anything else a
    :class:`LinearBlockCode`.
    """
    if isinstance(spec, str) and spec.strip().lower().startswith("5gnr"):
        from genjscc.core.fec.ldpc5g import NR5GLDPC

        return NR5GLDPC.from_spec(spec)
    return LinearBlockCode.from_name(spec)
