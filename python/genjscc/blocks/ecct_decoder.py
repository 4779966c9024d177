"""ecct_decoder: decode a PDU of LLRs with a trained ECCT (genjscc.core.ecct), all codewords
of the PDU as one batch."""

from __future__ import annotations

import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._backend import ServerBackend
from genjscc.blocks._meta import KEY_CODEWORDS, KEY_NUM_BITS, KEY_SYNDROME_OK
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.core.ecct.decoder import build_decoder
from genjscc.core.fec.codes import get_code

__all__ = ["OUTPUTS", "ecct_decoder"]

OUTPUTS = ("info", "codeword")


class ecct_decoder(PduBlock):
    """Decode a PDU of LLRs with an Error Correction Code Transformer.

    LLR convention: ``llr = ln P(b=0) / P(b=1)`` (``soft_demapper``'s output), the convention
    the ECCT models are trained with. LLRs are clipped to ``+-llr_clip``; a PDU holding a NaN
    or infinite LLR is refused, as the inference server refuses it (``invalid_input``):
    erasures are LLR 0, saturated LLRs large finite numbers.

    Input (``in``): PDU of f32 LLRs, ``n`` per codeword, any whole number of codewords.

    Output (``out``): PDU of u8 bits, one bit per byte: the ``k`` information bits of every
    codeword (``output="info"``) or all ``n`` codeword bits (``"codeword"``). Metadata: the
    input's plus ``codewords`` (long), ``num_bits`` (long) and ``syndrome_ok`` (bool, every
    decoded word satisfies all parity checks).

    Parameters: ``code``: shipped code name (``genjscc ber --help`` lists them); ``model``:
    zoo name or ``.safetensors`` file (empty: the zoo's ``ecct-<code>``); ``output``;
    ``device``: torch device; ``backend``: ``"local"`` (in-process torch) or
    ``"tcp://HOST:PORT"`` (a ``genjscc serve`` inference server serving that model: its
    weights sha256 must equal the local zoo's or file's when the model is known here);
    ``fallback``: with a server, ``"none"`` (frames whose server call fails are emitted with
    the hard decision ``llr < 0`` and marked) or ``"local"`` (decoded locally instead);
    ``timeout_s``: seconds to wait for the server per PDU; ``llr_clip``.

    With a server backend every output PDU carries ``backend_ok`` (bool), ``backend``
    (``server``, ``failed`` or ``local-fallback``) and, on failure, ``backend_error`` (an
    error code); failures are counted in ``num_backend_failures()``. The flowgraph keeps
    running while the server is down and uses it again as soon as it answers.

    Rejected (logged, counted in ``num_errors()``, dropped): not an f32 PDU, empty, a length
    that is not a multiple of ``n``, a NaN or infinite LLR.
    """

    def __init__(self, code: str = "POLAR_N64_K32", model: str = "", output: str = "info",
                 device: str = "cpu", backend: str = "local", llr_clip: float = 30.0,
                 fallback: str = "none", timeout_s: float = 2.0):
        PduBlock.__init__(self, "genjscc_ecct_decoder")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if not (np.isfinite(llr_clip) and llr_clip > 0):
            raise ValueError(f"llr_clip must be a finite positive number, got {llr_clip}")
        self.code = get_code(code)
        self.output = output
        self.llr_clip = float(llr_clip)
        self.device = torch.device(device)
        self.backend = ServerBackend(self.logger, backend, fallback, timeout_s)
        self.decoder = None
        if not self.backend.remote or fallback == "local":
            self.decoder = build_decoder(self.code, model=model or None, device=self.device)
        self.remote = None
        if self.backend.remote:
            self.remote = self.backend.client.decoder("ecct", self.code, model=model or None)
        self._info = torch.as_tensor(np.asarray(self.code.info_positions), dtype=torch.long)
        self._lock = threading.Lock()
        self._num_codewords = 0

    def num_backend_failures(self) -> int:
        """PDUs whose server call failed (emitted marked, or decoded by the local fallback)."""
        return self.backend.num_failures()

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
        if not np.isfinite(llr).all():  # the server's rule: refused, not guessed at
            bad = int(llr.size - np.count_nonzero(np.isfinite(llr)))
            raise PduError(f"{bad} of {llr.size} LLRs are NaN or infinite; send erasures as "
                           "0 and saturated LLRs as large finite numbers")
        words = np.clip(llr, -self.llr_clip, self.llr_clip)
        batch = torch.from_numpy(words.reshape(-1, n))
        backend = None
        if self.remote is None:
            bits = self.decoder(batch.to(self.device))
        else:
            bits, backend = self.backend.run(
                lambda: self.remote(batch),
                (lambda: self.decoder(batch.to(self.device))) if self.decoder else None,
                lambda: (batch < 0).to(torch.uint8))
        syndrome_ok = not bool(self.code.syndrome(bits).any())
        if self.output == "info":
            bits = bits.index_select(1, self._info.to(bits.device))
        out = bits.reshape(-1).cpu().numpy().astype(np.uint8, copy=False)
        with self._lock:
            self._num_codewords += llr.size // n
        meta = pmt.dict_add(meta, KEY_CODEWORDS, pmt.from_long(llr.size // n))
        meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(int(out.size)))
        meta = pmt.dict_add(meta, KEY_SYNDROME_OK, pmt.from_bool(syndrome_ok))
        if backend is not None:
            meta = ServerBackend.add_meta(meta, backend)
        return make_pdu(meta, out)
