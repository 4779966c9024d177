"""pdu_channel: Monte-Carlo channel on PDUs of complex symbols (genjscc.core.channel).

AWGN or Rayleigh block fading per symbol, and Gilbert-Elliott packet loss per PDU.
"""

from __future__ import annotations

import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import KEY_CHANNEL_H, KEY_ESNO_DB, KEY_LOST_BEFORE, KEY_NOISE_VAR
from genjscc.blocks._pdu import PduBlock, make_pdu, parse_pdu
from genjscc.core.channel.awgn import add_awgn
from genjscc.core.channel.fading import RayleighBlockFading, equalize
from genjscc.core.channel.packet_loss import GilbertElliott
from genjscc.core.channel.snr import noise_var_from_esno_db

__all__ = ["MODELS", "pdu_channel"]

MODELS = ("awgn", "rayleigh")


# Loss-mask draws per refill. The core model starts each draw from its stationary state, so
# burst correlation is cut once per chunk: negligible for chunks much longer than a burst.
_LOSS_CHUNK = 4096


class pdu_channel(PduBlock):
    """Monte-Carlo channel for PDUs of unit-energy complex symbols.

    Input (``in``): PDU of c32 symbols.
    Output (``out``): PDU of c32 received symbols, metadata = input's plus
    ``noise_var`` (N0 as a double; with ``model="rayleigh"`` and ``equalize=True`` an f32
    vector of per-symbol effective N0 / |h|^2 after zero-forcing with perfect CSI), ``esno_db``
    and ``lost_before`` (long: PDUs lost since the previous delivered one). With
    ``model="rayleigh"`` and ``equalize=False``, ``channel_h`` (c32 vector, the per-symbol
    coefficient) is added and the symbols are ``h x + w``.

    Parameters: ``model`` ``"awgn"`` or ``"rayleigh"``; ``esno_db`` Es/N0 in dB (Es = 1, so
    N0 = 10^(-esno_db/10)); ``loss_rate`` and ``mean_burst_length`` of a Gilbert-Elliott
    loss process (``loss_rate=0`` disables it); ``seed`` of the torch generator (runs are
    reproducible); ``block_length`` symbols per fading coefficient (0 = one per PDU);
    ``equalize`` ZF-equalize Rayleigh fading with perfect CSI.

    Lost PDUs are counted in ``num_lost()`` and not emitted.
    """

    def __init__(
        self,
        model: str = "awgn",
        esno_db: float = 10.0,
        loss_rate: float = 0.0,
        mean_burst_length: float = 1.0,
        seed: int = 0,
        block_length: int = 0,
        equalize: bool = True,
    ):
        PduBlock.__init__(self, "genjscc_pdu_channel")
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        if int(block_length) < 0:
            raise ValueError(f"block_length must be >= 0 (0 = one coefficient per PDU), got "
                             f"{block_length!r}")
        self.model = model
        self.equalize = bool(equalize)
        self._fading = RayleighBlockFading(int(block_length) or None)
        self._lock = threading.Lock()
        self._generator = torch.Generator().manual_seed(int(seed))
        self._num_lost = 0
        self._lost_before = 0
        self._loss_mask = np.zeros(0, dtype=bool)
        self._loss_pos = 0
        self._esno_db = 0.0
        self._noise_var = 1.0
        self._loss_model: GilbertElliott | None = None
        self._loss_rate = 0.0
        self._mean_burst_length = 1.0
        self.set_esno_db(esno_db)
        self._set_loss(loss_rate, mean_burst_length)

    # -- setters (GRC callbacks) --------------------------------------------------------------

    def set_esno_db(self, esno_db: float) -> None:
        """Set Es/N0 in dB (N0 = 10^(-esno_db/10) for unit-energy symbols)."""
        nv = float(noise_var_from_esno_db(float(esno_db)))
        with self._lock:
            self._esno_db = float(esno_db)
            self._noise_var = nv

    def set_loss_rate(self, loss_rate: float) -> None:
        """Set the long-run packet-loss rate in [0, 1) (0 disables losses)."""
        self._set_loss(loss_rate, self._mean_burst_length)

    def set_mean_burst_length(self, mean_burst_length: float) -> None:
        """Set the mean number of consecutive lost PDUs (>= 1)."""
        self._set_loss(self._loss_rate, mean_burst_length)

    def _set_loss(self, loss_rate: float, mean_burst_length: float) -> None:
        loss_rate, mean_burst_length = float(loss_rate), float(mean_burst_length)
        model = GilbertElliott.from_loss_rate(loss_rate, mean_burst_length)
        with self._lock:
            self._loss_rate, self._mean_burst_length = loss_rate, mean_burst_length
            self._loss_model = model if loss_rate > 0 else None
            self._loss_mask = np.zeros(0, dtype=bool)
            self._loss_pos = 0

    # -- state --------------------------------------------------------------------------------

    def esno_db(self) -> float:
        with self._lock:
            return self._esno_db

    def noise_var(self) -> float:
        """N0 of the current Es/N0."""
        with self._lock:
            return self._noise_var

    def num_lost(self) -> int:
        """PDUs dropped by the packet-loss model so far."""
        with self._lock:
            return self._num_lost

    # -- work ---------------------------------------------------------------------------------

    def _next_lost(self) -> bool:
        """Whether the next PDU is lost (caller holds the lock)."""
        if self._loss_model is None:
            return False
        if self._loss_pos >= self._loss_mask.size:
            self._loss_mask = self._loss_model.sample(_LOSS_CHUNK, self._generator).numpy()
            self._loss_pos = 0
        lost = bool(self._loss_mask[self._loss_pos])
        self._loss_pos += 1
        return lost

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base | None:
        meta, x = parse_pdu(msg, "c32")
        with self._lock:
            if self._next_lost():
                self._num_lost += 1
                self._lost_before += 1
                return None
            lost_before, self._lost_before = self._lost_before, 0
            n0, esno_db = self._noise_var, self._esno_db
            y, nv_meta, h = self._apply(torch.from_numpy(x), n0)
        meta = pmt.dict_add(meta, KEY_NOISE_VAR, nv_meta)
        meta = pmt.dict_add(meta, KEY_ESNO_DB, pmt.from_double(esno_db))
        meta = pmt.dict_add(meta, KEY_LOST_BEFORE, pmt.from_long(lost_before))
        if h is not None:
            meta = pmt.dict_add(meta, KEY_CHANNEL_H, pmt.to_pmt(h))
        return make_pdu(meta, y)

    def _apply(self, x: torch.Tensor, n0: float):
        """Channel output, the noise_var metadata value and (unequalized fading) the CSI."""
        if self.model == "awgn":
            y = add_awgn(x, n0, self._generator)
            return y.numpy(), pmt.from_double(n0), None
        y, h = self._fading(x, n0, self._generator)
        if not self.equalize:
            return y.numpy(), pmt.from_double(n0), h.numpy().astype(np.complex64)
        x_hat, nv_eff = equalize(y, h, n0)
        nv_vec = np.ascontiguousarray(nv_eff.numpy(), dtype=np.float32)
        return x_hat.numpy(), pmt.to_pmt(nv_vec), None
