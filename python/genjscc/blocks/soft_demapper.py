"""soft_demapper: PDU of complex symbols -> PDU of float32 LLRs (genjscc.core.mapping)."""

from __future__ import annotations

import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import KEY_MODULATION, KEY_NUM_BITS, get_noise_var, get_symbol
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.core.mapping import constellation

__all__ = ["METHODS", "soft_demapper"]

METHODS = ("exact", "maxlog")


def _check_noise_var(noise_var: float) -> float:
    nv = float(noise_var)
    if not nv > 0:
        raise ValueError(f"noise_var (N0) must be > 0, got {noise_var!r}")
    return nv


class soft_demapper(PduBlock):
    """Soft-demap a PDU of complex symbols to a PDU of LLRs.

    LLR convention: ``llr = ln P(b=0 | y) / P(b=1 | y)`` (positive = bit 0 more likely; hard
    decision ``b = llr < 0``). This is the opposite sign of gr-fec's soft input.

    Input (``in``): PDU of c32 symbols of unit-energy ``modulation``.
    Output (``out``): PDU of f32 LLRs, ``bits_per_symbol`` per symbol in mapping order;
    metadata is the input's plus ``modulation`` and ``num_bits``.

    The noise variance N0 (complex, ``CN(0, N0)``) is read from the metadata key
    ``noise_var_key`` when present: a number, or an f32 vector with one value per symbol
    (e.g. after equalization). Otherwise the ``noise_var`` parameter is used. A PDU whose
    metadata ``modulation`` names another modulation is rejected, and so is a PDU holding a
    NaN or infinite symbol (its LLRs would be NaN): logged, counted in ``num_errors()``,
    dropped, the rule the ECCT decoder block and the inference server apply to NaN LLRs.
    """

    def __init__(
        self,
        modulation: str = "16qam",
        noise_var: float = 0.1,
        method: str = "exact",
        noise_var_key: str = "noise_var",
    ):
        PduBlock.__init__(self, "genjscc_soft_demapper")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.constellation = constellation(modulation)
        self.method = method
        self._noise_var = _check_noise_var(noise_var)
        self._lock = threading.Lock()
        self.noise_var_key = pmt.intern(noise_var_key) if noise_var_key else None

    def set_noise_var(self, noise_var: float) -> None:
        """Set the fallback N0 (used for PDUs without the metadata key); GRC callback."""
        nv = _check_noise_var(noise_var)
        with self._lock:
            self._noise_var = nv

    def noise_var(self) -> float:
        """The fallback N0."""
        with self._lock:
            return self._noise_var

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, y = parse_pdu(msg, "c32")
        self._check_modulation(meta)
        if not np.isfinite(y).all():
            bad = int(y.size - np.count_nonzero(np.isfinite(y)))
            raise PduError(f"{bad} of {y.size} symbols are NaN or infinite: their LLRs would "
                           "be NaN")
        nv = None
        if self.noise_var_key is not None:
            nv = get_noise_var(meta, self.noise_var_key, y.size)
        if nv is None:
            nv = self.noise_var()
        if np.any(np.asarray(nv) <= 0):
            raise PduError("metadata noise_var is 0 (for some symbol): LLRs would be infinite")
        if isinstance(nv, np.ndarray):
            nv = torch.from_numpy(nv)
        llr = self.constellation.demap(torch.from_numpy(y), nv, self.method).numpy()
        meta = pmt.dict_add(meta, KEY_MODULATION, pmt.intern(self.constellation.name))
        meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(int(llr.size)))
        return make_pdu(meta, llr.astype(np.float32, copy=False))

    def _check_modulation(self, meta: pmt.pmt_base) -> None:
        name = get_symbol(meta, KEY_MODULATION)
        if name is None:
            return
        try:
            sent = constellation(name).name
        except ValueError:
            sent = None
        if sent != self.constellation.name:
            raise PduError(
                f"PDU metadata says modulation {name}, but this demapper is "
                f"set to {self.constellation.name}"
            )
