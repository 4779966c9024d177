"""ldpc_encoder / ldpc_decoder: CRC + LDPC channel coding of PDUs (genjscc.core.fec).

Framing (both blocks follow it; a PDU is one transport block): the payload is zero-padded
to ``C`` codewords of ``k`` information bits and one CRC ends the last codeword, the rule of
:mod:`genjscc.core.fec.framing`. The payload length ``A`` travels in the metadata key
``num_info_bits``. Links that drop metadata (``ofdm_qam_tx`` does) lose it; the decoder then
returns the padded payload: all ``C k - L`` bits when unpacked, or the whole bytes among them
when packed. Choose PDU sizes with ``8 * bytes + L`` a multiple of ``k`` to have no padding
at all.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pmt
import torch

from genjscc.blocks._backend import ServerBackend
from genjscc.blocks._meta import (
    KEY_CODEWORDS,
    KEY_CRC_OK,
    KEY_ITERATIONS,
    KEY_NUM_BITS,
    KEY_NUM_INFO_BITS,
    KEY_SYNDROME_OK,
    get_long,
)
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.blocks.qam_mapper import INPUT_FORMATS, bits_from_bytes
from genjscc.core.fec.codes import Code, get_code
from genjscc.core.fec.crc import CRC
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.fec.framing import frame, max_payload_bits, unframe

__all__ = ["OUTPUT_FORMATS", "ldpc_decoder", "ldpc_encoder"]

OUTPUT_FORMATS = ("packed", "unpacked")
_MISMATCH = "the LLR PDU was cut or the decoder's code/CRC differ from the encoder's"



def _make_code(code: str | Code) -> Code:
    """A code object from a spec string (shipped name, file, ``5gnr:...``) or the object."""
    if isinstance(code, str):
        if not code.strip():
            raise ValueError("code must name a code, e.g. '5gnr:bg2:k=512:e=1024' or "
                             "'LDPC_N49_K24'")
        return get_code(code.strip())
    needed = ("k", "e", "encode", "rate_recover", "info_positions", "H")
    if all(hasattr(code, attr) for attr in needed):
        return code
    raise TypeError("code must be a spec string or a code object from "
                    "genjscc.core.fec.codes.get_code")


def _make_crc(crc: str | None) -> CRC | None:
    """None for no CRC (``""`` or None), else the TS 38.212 CRC of that name."""
    if crc is None or (isinstance(crc, str) and not crc.strip()):
        return None
    return CRC(crc)


class ldpc_encoder(PduBlock):
    """CRC-attach and LDPC-encode a PDU of bits; output one bit per byte for ``qam_mapper``.

    Input (``in``): PDU of u8. ``input_format="packed"``: 8 bits per byte, MSB first;
    ``"unpacked"``: one bit (0/1) per byte.

    Output (``out``): PDU of u8 code bits, one bit (0/1) per byte, ``codewords * e`` of them
    (feed ``qam_mapper(input_format="unpacked")``). Metadata: the input's plus
    ``num_info_bits`` (long, payload bits ``A`` before padding and CRC) and ``codewords``
    (long, ``C``). Framing: see the module docstring (zero padding after the payload, the CRC
    over the padded payload at the end of the last codeword).

    Parameters: ``code``: spec string for :func:`genjscc.core.fec.codes.get_code` (a shipped
    name such as ``"LDPC_N49_K24"``, an ``.alist``/dense file, or ``"5gnr:bg2:k=512:e=1024"``),
    or a code object; ``crc``: ``"24A"``, ``"24B"``, ``"24C"``, ``"16"``, ``"11"``, ``"6"``, or
    ``""`` for none; ``input_format``.

    Malformed messages are logged, counted (``num_errors()``) and dropped.
    """

    def __init__(self, code: str | Code = "5gnr:bg2:k=512:e=1024", crc: str = "24A",
                 input_format: str = "packed"):
        PduBlock.__init__(self, "genjscc_ldpc_encoder")
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self.code = _make_code(code)
        self.crc = _make_crc(crc)
        self.input_format = input_format

    @property
    def crc_length(self) -> int:
        """CRC bits per PDU (0 without CRC)."""
        return self.crc.length if self.crc is not None else 0

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, data = parse_pdu(msg, "u8")
        payload = bits_from_bytes(data, self.input_format)
        info = frame(payload, self.code.k, self.crc)
        num_cw = info.shape[0]
        coded = self.code.encode(info)
        meta = pmt.dict_add(meta, KEY_NUM_INFO_BITS, pmt.from_long(int(payload.size)))
        meta = pmt.dict_add(meta, KEY_CODEWORDS, pmt.from_long(num_cw))
        return make_pdu(meta, coded.reshape(-1).numpy().astype(np.uint8, copy=False))


class ldpc_decoder(PduBlock):
    """Decode a PDU of LLRs (all codewords as one batch), check the CRC, output the payload.

    LLR convention: ``llr = ln P(b=0) / P(b=1)`` (``soft_demapper``'s output; gr-fec's soft
    values have the opposite sign). NaN LLRs count as erasures (0), infinite or huge ones are
    clipped by the decoder.

    Input (``in``): PDU of f32 LLRs, ``e`` per codeword, any whole number of codewords.

    Output (``out``): PDU of u8 payload, packed (8 bits per byte, MSB first) or unpacked (one
    bit per byte). Its length is the metadata ``num_info_bits`` when present (as set by
    ``ldpc_encoder`` and kept by ``qam_mapper``, ``pdu_channel`` and ``soft_demapper``); without
    it the zero padding is kept (module docstring). Metadata: the input's plus ``crc_ok``
    (bool, only with a CRC), ``syndrome_ok`` (bool, every codeword satisfies all parity
    checks), ``iterations`` (long, most iterations any codeword needed; -1 for decoders that do
    not report it), ``codewords`` (long) and ``num_bits`` (long, payload bits out). A PDU with a
    failed CRC is still emitted (filter on ``crc_ok``, e.g. with ``pdu.pdu_filter``) and
    counted in ``num_crc_fail()``.

    Parameters: ``code`` and ``crc`` as the encoder's; ``decoder``: a name of
    :func:`genjscc.core.fec.decoders.list_decoders` (``"bp"`` sum-product, ``"minsum"``,
    ``"normalized-minsum"``, ``"offset-minsum"``, their ``-layered`` variants, ``"ldpc-cpp"``,
    ``"none"``); ``num_iters``: maximum iterations (each codeword stops early at a zero
    syndrome); ``output_format``; ``device``: torch device of the decoder (``"cpu"`` or e.g.
    ``"cuda"``); ``options``: dict of decoder options (e.g. ``{"scaling": 0.8}``);
    ``backend``: ``"local"`` (in-process) or ``"tcp://HOST:PORT"``, a ``genjscc serve``
    server with a ``bp:CODE`` model of this code's parity-check matrix (rate recovery stays
    here; the server decodes); ``fallback``: ``"none"`` (a PDU whose server call fails is
    emitted from the hard decisions, so its CRC fails, and marked) or ``"local"``;
    ``timeout_s``: seconds to wait for the server per PDU. With a server, output metadata
    also holds ``backend_ok``, ``backend`` and on failure ``backend_error``; failures are
    counted in ``num_backend_failures()``.

    Rejected (logged, counted in ``num_errors()``, dropped): not an f32 PDU, empty, a length
    that is not a multiple of ``e``, metadata ``num_info_bits`` or ``codewords`` that do not
    fit the length.
    """

    def __init__(
        self,
        code: str | Code = "5gnr:bg2:k=512:e=1024",
        decoder: str = "bp",
        num_iters: int = 50,
        crc: str = "24A",
        output_format: str = "packed",
        device: str = "cpu",
        options: dict | None = None,
        backend: str = "local",
        fallback: str = "none",
        timeout_s: float = 2.0,
    ):
        PduBlock.__init__(self, "genjscc_ldpc_decoder")
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}"
            )
        self.code = _make_code(code)
        self.crc = _make_crc(crc)
        self.output_format = output_format
        self.device = torch.device(device)
        self.backend = ServerBackend(self.logger, backend, fallback, timeout_s)
        self.decoder = None
        if not self.backend.remote or fallback == "local":
            self.decoder = make_decoder(decoder, self.code, num_iters, **dict(options or {}))
        self.remote = None
        if self.backend.remote:
            if str(decoder).strip().lower() == "ecct":
                raise ValueError("ldpc_decoder decodes with BP; use ecct_decoder for ECCT")
            self.remote = self.backend.client.decoder(decoder, self.code, num_iters,
                                                      **dict(options or {}))
        self._info_positions = torch.as_tensor(np.asarray(self.code.info_positions),
                                               dtype=torch.long)
        self._stats_lock = threading.Lock()
        self._num_crc_fail = 0
        self._num_codewords = 0

    @property
    def crc_length(self) -> int:
        """CRC bits per PDU (0 without CRC)."""
        return self.crc.length if self.crc is not None else 0

    def num_backend_failures(self) -> int:
        """PDUs whose server call failed (emitted marked, or decoded by the local fallback)."""
        return self.backend.num_failures()

    def num_crc_fail(self) -> int:
        """Decoded PDUs whose CRC failed (they are emitted with ``crc_ok`` False)."""
        with self._stats_lock:
            return self._num_crc_fail

    def num_codewords(self) -> int:
        """Codewords decoded so far."""
        with self._stats_lock:
            return self._num_codewords

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, llr = parse_pdu(msg, "f32")
        e, k = self.code.e, self.code.k
        if llr.size % e:
            raise PduError(
                f"{llr.size} LLRs are not a whole number of codewords of e = {e} LLRs; "
                "the decoder's code must equal the encoder's"
            )
        num_cw = llr.size // e
        get_long(meta, KEY_CODEWORDS, num_cw, num_cw, _MISMATCH)
        max_info = max_payload_bits(num_cw, k, self.crc_length)
        num_info = get_long(meta, KEY_NUM_INFO_BITS, 1, max_info, _MISMATCH)

        bits, iterations, syndrome_ok, backend = self._decode(llr.reshape(num_cw, e))
        info = bits.index_select(1, self._info_positions.to(bits.device)).reshape(-1).cpu()
        packed = self.output_format == "packed"
        payload, crc_ok = unframe(info, self.crc, num_info, whole_bytes=packed)
        out = np.packbits(payload) if packed else payload

        with self._stats_lock:
            self._num_codewords += num_cw
            self._num_crc_fail += crc_ok is False
        if crc_ok is not None:
            meta = pmt.dict_add(meta, KEY_CRC_OK, pmt.from_bool(crc_ok))
        meta = pmt.dict_add(meta, KEY_SYNDROME_OK, pmt.from_bool(syndrome_ok))
        meta = pmt.dict_add(meta, KEY_ITERATIONS, pmt.from_long(iterations))
        meta = pmt.dict_add(meta, KEY_CODEWORDS, pmt.from_long(num_cw))
        meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(int(payload.size)))
        if backend is not None:
            meta = ServerBackend.add_meta(meta, backend)
        return make_pdu(meta, out.astype(np.uint8, copy=False))

    def _decode(self, llr: np.ndarray) -> tuple[torch.Tensor, int, bool, dict | None]:
        """Codeword bits ``[C, n]``, most iterations, whether all syndromes are zero, and what
        decoded them (None: the local decoder; else the backend metadata)."""
        llr_cw = self.code.rate_recover(torch.from_numpy(llr).to(self.device))
        if self.remote is None:
            return (*self._decode_with(self.decoder, llr_cw), None)

        def failed() -> tuple[torch.Tensor, int, bool]:
            bits = (llr_cw < 0).to(torch.uint8)  # the hard decision: its CRC check fails
            return bits, 0, not bool(self.code.syndrome(bits).any())

        local = (lambda: self._decode_with(self.decoder, llr_cw)) if self.decoder else None
        result, backend = self.backend.run(lambda: self._decode_with(self.remote, llr_cw.cpu()),
                                           local, failed)
        return (*result, backend)

    def _decode_with(self, decoder: Any, llr_cw: torch.Tensor) -> tuple[torch.Tensor, int, bool]:
        decode = getattr(decoder, "decode", None)
        if decode is not None:  # BPDecoder: iterations and syndromes come with the result
            res = decode(llr_cw)
            return res.bits, int(res.num_iters.max()), bool(res.syndrome_ok.all())
        bits = decoder(llr_cw)
        syndrome_ok = not bool(self.code.syndrome(bits).any())
        return bits, -1, syndrome_ok
