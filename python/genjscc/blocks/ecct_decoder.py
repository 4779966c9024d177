"""ecct_decoder: decode a PDU of LLRs with a trained ECCT (genjscc.core.ecct), all codewords
of the PDU as one batch."""

from __future__ import annotations

import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.core.ecct.decoder import build_decoder
from genjscc.core.fec.codes import get_code

__all__ = ["OUTPUTS", "ecct_decoder"]

OUTPUTS = ("info", "codeword")
KEY_CODEWORDS = pmt.intern("codewords")
KEY_NUM_BITS = pmt.intern("num_bits")
KEY_SYNDROME_OK = pmt.intern("syndrome_ok")


class ecct_decoder(PduBlock):
    """Decode a PDU of LLRs with an Error Correction Code Transformer.

    LLR convention: ``llr = ln P(b=0) / P(b=1)`` (``soft_demapper``'s output), the convention
    the ECCT models are trained with. NaN LLRs count as erasures (0); LLRs are clipped to
    ``+-llr_clip`` (infinite ones included) because the model takes finite inputs only.

    Input (``in``): PDU of f32 LLRs, ``n`` per codeword, any whole number of codewords.

    Output (``out``): PDU of u8 bits, one bit per byte: the ``k`` information bits of every
    codeword (``output="info"``) or all ``n`` codeword bits (``"codeword"``). Metadata: the
    input's plus ``codewords`` (long), ``num_bits`` (long) and ``syndrome_ok`` (bool, every
    decoded word satisfies all parity checks).

    Parameters: ``code``: shipped code name (``genjscc ber --help`` lists them); ``model``:
    zoo name or ``.safetensors`` file (empty: the zoo's ``ecct-<code>``); ``output``;
    ``device``: torch device; ``backend``: ``"local"`` (in-process torch; the inference-server
    backend is not available for ECCT yet); ``llr_clip``.

    Rejected (logged, counted in ``num_errors()``, dropped): not an f32 PDU, empty, a length
    that is not a multiple of ``n``.
    """

    def __init__(self, code: str = "POLAR_N64_K32", model: str = "", output: str = "info",
                 device: str = "cpu", backend: str = "local", llr_clip: float = 30.0):
        PduBlock.__init__(self, "genjscc_ecct_decoder")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if backend != "local":
            raise ValueError(f"backend {backend!r}: ecct_decoder only runs locally so far; use "
                             "backend='local'")
        if not (np.isfinite(llr_clip) and llr_clip > 0):
            raise ValueError(f"llr_clip must be a finite positive number, got {llr_clip}")
        self.code = get_code(code)
        self.output = output
        self.llr_clip = float(llr_clip)
        self.device = torch.device(device)
        self.decoder = build_decoder(self.code, model=model or None, device=self.device)
        self._info = torch.as_tensor(np.asarray(self.code.info_positions), dtype=torch.long)
        self._lock = threading.Lock()
        self._num_codewords = 0

    def num_codewords(self) -> int:
        """Codewords decoded so far."""
        with self._lock:
            return self._num_codewords

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, llr = parse_pdu(msg, "f32")
        n = self.code.n
        if llr.size % n:
            raise PduError(f"{llr.size} LLRs are not a whole number of codewords of n = {n}; "
                           "the decoder's code must equal the encoder's")
        words = np.clip(np.nan_to_num(llr, nan=0.0), -self.llr_clip, self.llr_clip)
        bits = self.decoder(torch.from_numpy(words.reshape(-1, n)).to(self.device))
        syndrome_ok = not bool(self.code.syndrome(bits).any())
        if self.output == "info":
            bits = bits.index_select(1, self._info.to(bits.device))
        out = bits.reshape(-1).cpu().numpy().astype(np.uint8, copy=False)
        with self._lock:
            self._num_codewords += llr.size // n
        meta = pmt.dict_add(meta, KEY_CODEWORDS, pmt.from_long(llr.size // n))
        meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(int(out.size)))
        meta = pmt.dict_add(meta, KEY_SYNDROME_OK, pmt.from_bool(syndrome_ok))
        return make_pdu(meta, out)
