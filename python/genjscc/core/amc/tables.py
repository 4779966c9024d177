"""TS 38.214 MCS tables and the transport block that an MCS carries in ``num_re`` resource elements.

* :func:`mcs_table` reads the PDSCH MCS index tables shipped in ``genjscc/data/nr``
  (Table 5.1.3.1-1, "table 1", QPSK to 64QAM, I_MCS 0..28; Table 5.1.3.1-2, "table 2", QPSK to
  256QAM, I_MCS 0..27). Reserved rows (retransmission-only entries without a code rate) are
  left out.
* :func:`transport_block_size` is the TBS determination of TS 38.214 §5.1.3.2 (steps 2 to 4,
  one layer by default), with the 93 entries of Table 5.1.3.2-1 for ``N_info <= 3824``.
* :func:`transport_config` turns an MCS and a number of resource elements into the one 5G NR
  LDPC code block that carries it: ``k = TBS + L`` (the transport-block CRC, ``L = 16`` when
  ``TBS <= 3824`` else 24, is part of the code block's information bits), ``e = G = num_re *
  Q_m`` coded bits, the base graph of TS 38.212 §7.2.2. Transport blocks that the spec would
  segment into several code blocks are refused (use fewer resource elements).

A resource element (RE) is one complex channel use, so the MCS spectral efficiency ``Q_m * R``
is in information bits per complex symbol (bit/s/Hz at one symbol per second and hertz).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from genjscc.core.fec.ldpc5g import NR5GLDPC, segmentation_info, select_base_graph
from genjscc.core.mapping import MODULATIONS

__all__ = [
    "MCS_TABLES",
    "TBS_TABLE",
    "MCSEntry",
    "TransportConfig",
    "mcs_entry",
    "mcs_table",
    "transport_block_size",
    "transport_config",
]

MCS_TABLES = (1, 2)
"""MCS index tables available: 1 (Table 5.1.3.1-1, 64QAM) and 2 (Table 5.1.3.1-2, 256QAM)."""

TBS_TABLE = (
    24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176,
    184, 192, 208, 224, 240, 256, 272, 288, 304, 320, 336, 352, 368, 384, 408, 432, 456, 480,
    504, 528, 552, 576, 608, 640, 672, 704, 736, 768, 808, 848, 888, 928, 984, 1032, 1064, 1128,
    1160, 1192, 1224, 1256, 1288, 1320, 1352, 1416, 1480, 1544, 1608, 1672, 1736, 1800, 1864,
    1928, 2024, 2088, 2152, 2216, 2280, 2408, 2472, 2536, 2600, 2664, 2728, 2792, 2856, 2976,
    3104, 3240, 3368, 3496, 3624, 3752, 3824,
)  # fmt: skip
"""TS 38.214 Table 5.1.3.2-1: transport block sizes for ``N_info <= 3824``."""

_NAME_BY_QM = {bps: name for name, bps in MODULATIONS.items()}


@dataclass(frozen=True)
class MCSEntry:
    """One row of a TS 38.214 MCS index table.

    Attributes:
        index: I_MCS.
        modulation_order: Q_m, bits per symbol (2, 4, 6, 8).
        code_rate: target code rate R (the spec's ``R x 1024`` divided by 1024).
        spectral_efficiency: ``Q_m * R`` in information bits per complex symbol, as printed in
            the spec (4 decimals).
        modulation: the :mod:`genjscc.core.mapping` name: ``"qpsk"``, ``"16qam"``, ...
        table: the MCS index table (1 or 2) the row belongs to.
    """

    index: int
    modulation_order: int
    code_rate: float
    spectral_efficiency: float
    modulation: str
    table: int

    @property
    def code_rate_x1024(self) -> float:
        """R x 1024 as printed in the spec (682.5 and 916.5 are not integers)."""
        return self.code_rate * 1024.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) with the fields and ``code_rate_x1024``."""
        return {
            "table": self.table,
            "mcs_index": self.index,
            "modulation": self.modulation,
            "modulation_order": self.modulation_order,
            "code_rate": self.code_rate,
            "code_rate_x1024": self.code_rate_x1024,
            "spectral_efficiency": self.spectral_efficiency,
        }


def check_table(table: Any) -> int:
    """Validate an MCS table number (1 or 2) and return it as an int."""
    if isinstance(table, bool) or table not in MCS_TABLES:
        raise ValueError(f"MCS table must be 1 (up to 64QAM) or 2 (up to 256QAM), got {table!r}")
    return int(table)


@cache
def mcs_table(table: int = 1) -> tuple[MCSEntry, ...]:
    """The rows of MCS index table ``table`` with a code rate (reserved rows excluded).

    Returns:
        Entries sorted by ``index``: 29 for table 1 (I_MCS 0..28), 28 for table 2 (0..27).
    """
    table = check_table(table)
    name = f"nr_mcs_table{table}_pdsch.csv"
    text = (resources.files("genjscc") / "data" / "nr" / name).read_text()
    entries = []
    for row in csv.DictReader(io.StringIO(text)):
        if not row["target_code_rate_x1024"]:
            continue  # reserved: Q_m only, for retransmissions
        qm = int(row["modulation_order"])
        entries.append(
            MCSEntry(
                index=int(row["mcs_index"]),
                modulation_order=qm,
                code_rate=float(row["target_code_rate_x1024"]) / 1024.0,
                spectral_efficiency=float(row["spectral_efficiency"]),
                modulation=_NAME_BY_QM[qm],
                table=table,
            )
        )
    return tuple(sorted(entries, key=lambda e: e.index))


def mcs_entry(index: int, table: int = 1) -> MCSEntry:
    """Row ``index`` (I_MCS) of MCS table ``table``; ValueError for a reserved or absent index."""
    entries = mcs_table(table)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(entries):
        raise ValueError(
            f"MCS index must be an integer 0..{len(entries) - 1} for table {table} "
            f"(higher indices are reserved), got {index!r}"
        )
    return entries[index]


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def transport_block_size(
    num_re: int, modulation_order: int, code_rate: float, num_layers: int = 1
) -> int:
    """TBS of TS 38.214 §5.1.3.2 for ``num_re`` data resource elements.

    ``N_info = N_RE * R * Q_m * v``. For ``N_info <= 3824``: quantize with
    ``n = max(3, floor(log2 N_info) - 6)`` to ``N'_info = max(24, 2^n floor(N_info / 2^n))``
    and take the smallest Table 5.1.3.2-1 entry ``>= N'_info``. Above: quantize with
    ``n = floor(log2(N_info - 24)) - 5`` to ``N'_info = max(3840, 2^n round((N_info - 24) /
    2^n))`` (round half up) and fill ``C`` code blocks of whole bytes, ``TBS = 8 C
    ceil((N'_info + 24) / (8 C)) - 24``.

    Args:
        num_re: N_RE, resource elements for data (after DM-RS and overhead; the spec's
            ``min(156, N'_RE) * n_PRB``).
        modulation_order: Q_m.
        code_rate: R.
        num_layers: v, MIMO layers.
    """
    num_re = _check_positive_int(num_re, "num_re")
    num_layers = _check_positive_int(num_layers, "num_layers")
    qm = _check_positive_int(modulation_order, "modulation_order")
    if not 0.0 < float(code_rate) <= 1.0:
        raise ValueError(f"code_rate must be in (0, 1], got {code_rate!r}")
    n_info = num_re * float(code_rate) * qm * num_layers
    if n_info <= 3824:
        n = max(3, math.floor(math.log2(n_info)) - 6)
        n_info_q = max(24, 2**n * math.floor(n_info / 2**n))
        return next(t for t in TBS_TABLE if t >= n_info_q)
    n = math.floor(math.log2(n_info - 24)) - 5
    n_info_q = max(3840, 2**n * math.floor((n_info - 24) / 2**n + 0.5))
    if code_rate <= 0.25:
        c = math.ceil((n_info_q + 24) / 3816)
    elif n_info_q > 8424:
        c = math.ceil((n_info_q + 24) / 8424)
    else:
        c = 1
    return 8 * c * math.ceil((n_info_q + 24) / (8 * c)) - 24


@dataclass(frozen=True)
class TransportConfig:
    """One transport block of an MCS on ``num_re`` resource elements, sent as one code block.

    Attributes:
        entry: the MCS.
        num_re: resource elements (complex symbols) of the allocation.
        tbs: transport block size (payload bits), :func:`transport_block_size`.
        crc_length: L, transport-block CRC bits (16 for ``tbs <= 3824``, else 24: CRC-24A).
        k: ``tbs + crc_length``, information bits of the LDPC code block.
        e: ``num_re * Q_m``, coded bits after rate matching (G).
        base_graph: LDPC base graph (TS 38.212 §7.2.2 from ``tbs`` and R).
        code: the :class:`~genjscc.core.fec.ldpc5g.NR5GLDPC` code block (``k``, ``e``, Q_m, rv).
    """

    entry: MCSEntry
    num_re: int
    tbs: int
    crc_length: int
    k: int
    e: int
    base_graph: int
    code: NR5GLDPC

    @property
    def effective_code_rate(self) -> float:
        """``k / e``: the rate actually sent (TBS quantization and CRC included)."""
        return self.k / self.e

    @property
    def info_bits_per_re(self) -> float:
        """``tbs / num_re``: payload bits per resource element."""
        return self.tbs / self.num_re


def transport_config(entry: MCSEntry, num_re: int, rv: int = 0) -> TransportConfig:
    """The 5G NR LDPC code block that carries MCS ``entry`` on ``num_re`` resource elements.

    ``tbs`` by TS 38.214 §5.1.3.2 (one layer), ``k = tbs + L`` with the TB CRC length ``L``
    (16 or 24), ``e = num_re * Q_m``, base graph by §7.2.2 of TS 38.212. Only the TB CRC is
    counted: a single code block carries no CB CRC.

    Raises:
        ValueError: the transport block would need several code blocks (``k`` above 8448
            bits on BG1 or 3840 on BG2: use fewer resource elements), or ``num_re`` is too
            small for the smallest TBS (``k > e``).
    """
    if not isinstance(entry, MCSEntry):
        raise TypeError(f"entry must be an MCSEntry (see mcs_table), got {type(entry).__name__}")
    num_re = _check_positive_int(num_re, "num_re")
    tbs = transport_block_size(num_re, entry.modulation_order, entry.code_rate)
    crc_length = 16 if tbs <= 3824 else 24
    k, e = tbs + crc_length, num_re * entry.modulation_order
    if k > e:
        raise ValueError(
            f"num_re={num_re} is too small for MCS {entry.index} (table {entry.table}): the "
            f"smallest transport block needs k={k} bits but only e={e} are sent"
        )
    bg = select_base_graph(tbs, entry.code_rate)
    if segmentation_info(k, bg).num_code_blocks > 1:
        raise ValueError(
            f"MCS {entry.index} (table {entry.table}) on num_re={num_re} gives TBS {tbs}, "
            f"more than one BG{bg} code block; use fewer resource elements"
        )
    code = NR5GLDPC(k, e, modulation_order=entry.modulation_order, rv=rv, base_graph=bg)
    return TransportConfig(entry, num_re, tbs, crc_length, k, e, bg, code)
