"""Text over the air as PDUs: the text JSCC pair and the LM-SSCC sentence pair.

Text PDUs (the encoders' input, the decoders' output) are u8 PDUs of UTF-8 text, one sentence
each. Symbol PDUs are c32 vectors of unit average energy per complex symbol, for any channel
block (``pdu_channel``, an OFDM link). The decoders read the noise variance ``noise_var``
(N0 per symbol: one value, or one per symbol after equalization) that ``pdu_channel`` writes,
else the metadata ``snr_db``, else their ``snr_db`` parameter; without any the PDU is refused
("missing SNR").

* ``text_jscc_encoder`` / ``text_jscc_decoder``: the DeepSC-class text JSCC
  (genjscc.core.text.model), ``channel_uses_per_token`` symbols per token. The decoder knows
  the number of tokens from the number of symbols.
* ``lm_sentence_encoder`` / ``lm_sentence_decoder``: LM-SSCC (genjscc.core.text.sscc): the
  sentence is range-coded alone by the LM into frames with lengths and CRC-16, then channel
  coded and mapped by a scheme of ``PRESETS`` (ECCT or BP on LDPC(49,24) / Polar(64,32) with
  BPSK, or 5G NR LDPC with QPSK). Metadata ``num_info_bits`` (the stream's bits) goes from
  encoder to decoder, as a transport block size would. A sentence that fails its check is
  *lost*: the decoder emits the ``placeholder`` text (default ``<lost>``) with ``text_ok`` =
  false and counts it in ``num_lost()``.

Both decoders add ``text_ok`` (bool) and ``snr_db`` (the Es/N0 they used) to the metadata.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import (
    KEY_NOISE_VAR,
    KEY_NUM_INFO_BITS,
    KEY_SNR_DB,
    KEY_TEXT_OK,
    get_float,
    get_long,
    get_noise_var,
)
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu

__all__ = ["lm_sentence_decoder", "lm_sentence_encoder", "text_jscc_decoder",
           "text_jscc_encoder", "text_pdu"]

MAX_TEXT_BYTES = 1 << 16


def text_pdu(text: str) -> pmt.pmt_base:
    """A u8 PDU of the UTF-8 bytes of ``text`` (for a message strobe's ``msg``)."""
    return make_pdu(pmt.make_dict(), np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def _text_of(msg: pmt.pmt_base) -> tuple[pmt.pmt_base, str]:
    meta, data = parse_pdu(msg, "u8")
    if data.size > MAX_TEXT_BYTES:
        raise PduError(f"text PDU of {data.size} bytes: at most {MAX_TEXT_BYTES} per PDU")
    try:
        return meta, data.tobytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise PduError(f"text PDU is not UTF-8: {err}") from None


def _noise(meta: pmt.pmt_base, n: int, fallback_db: float) -> np.ndarray:
    """N0 per symbol ``[n]`` from ``noise_var``, ``snr_db`` or the block's fallback."""
    nv = get_noise_var(meta, KEY_NOISE_VAR, n)
    if nv is None:
        snr = get_float(meta, KEY_SNR_DB)
        snr = fallback_db if snr is None else snr
        if not math.isfinite(snr):
            raise PduError("missing SNR: the PDU has no noise_var or snr_db metadata and the "
                           "block's snr_db parameter is NaN")
        nv = 10.0 ** (-snr / 10.0)
    out = np.broadcast_to(np.asarray(nv, dtype=np.float32), (n,)).copy()
    return np.maximum(out, 1e-12)


def _text_out(meta: pmt.pmt_base, text: str, ok: bool, snr_db: float) -> pmt.pmt_base:
    meta = pmt.dict_add(meta, KEY_TEXT_OK, pmt.from_bool(ok))
    meta = pmt.dict_add(meta, KEY_SNR_DB, pmt.from_double(float(snr_db)))
    return make_pdu(meta, np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


class text_jscc_encoder(PduBlock):
    """Text JSCC encoder: text PDU in, symbol PDU out (module docstring).

    Parameters: ``model`` (zoo name or .safetensors path), ``device``.
    """

    def __init__(self, model: str = "text-jscc-small", device: str = "cpu"):
        PduBlock.__init__(self, "genjscc_text_jscc_encoder")
        from genjscc import zoo

        self.model = zoo.load(model, "text-jscc", device)

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, text = _text_of(msg)
        x = self.model.encode_text(text).cpu().numpy()
        if x.size == 0:
            raise PduError("text PDU without tokens (only whitespace?): nothing to send")
        return make_pdu(meta, x.astype(np.complex64))


class text_jscc_decoder(PduBlock):
    """Text JSCC decoder: symbol PDU in, text PDU out (module docstring).

    Parameters: ``model`` (the encoder's), ``snr_db`` (fallback Es/N0 in dB for PDUs without
    ``noise_var``/``snr_db``; NaN = refuse them), ``device``.
    """

    def __init__(self, model: str = "text-jscc-small", snr_db: float = float("nan"),
                 device: str = "cpu"):
        PduBlock.__init__(self, "genjscc_text_jscc_decoder")
        from genjscc import zoo

        self.model = zoo.load(model, "text-jscc", device)
        self.snr_db = float(snr_db)

    def set_snr_db(self, snr_db: float) -> None:
        self.snr_db = float(snr_db)

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, y = parse_pdu(msg, "c32")
        cu = self.model.config.channel_uses_per_token
        if y.size % cu:
            raise PduError(f"{y.size} symbols: a text JSCC PDU has a multiple of {cu}")
        nv = _noise(meta, y.size, self.snr_db)
        snr_db = float(-10 * np.log10(nv.mean()))
        text = self.model.decode_text(torch.from_numpy(y), snr_db)
        return _text_out(meta, text, True, snr_db)


class lm_sentence_encoder(PduBlock):
    """LM-SSCC sentence encoder: text PDU in, symbol PDU out (module docstring).

    Parameters: ``scheme`` (a name of genjscc.core.text.sscc.PRESETS: ``lm-sscc-ecct``,
    ``lm-sscc-bp``, ``lm-sscc-polar-ecct``, ``lm-sscc-polar-bp``, ``lm-sscc``), ``lm`` (the
    LM: ``small``).
    """

    def __init__(self, scheme: str = "lm-sscc-ecct", lm: str = "small"):
        PduBlock.__init__(self, "genjscc_lm_sentence_encoder")
        from genjscc.core.text.sscc import LMSentenceSource, SentenceChannelCode, scheme_config

        self.source = LMSentenceSource(lm, rows=1)
        self.code = SentenceChannelCode(scheme_config(scheme))

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, text = _text_of(msg)
        stream = self.source.encode([text])[0]
        x = self.code.encode(stream).numpy()
        meta = pmt.dict_add(meta, KEY_NUM_INFO_BITS, pmt.from_long(len(stream)))
        return make_pdu(meta, x.astype(np.complex64))


class lm_sentence_decoder(PduBlock):
    """LM-SSCC sentence decoder: symbol PDU (with ``num_info_bits``) in, text PDU out.

    Parameters: ``scheme`` and ``lm`` (the encoder's), ``snr_db`` (fallback Es/N0 in dB; NaN
    = refuse PDUs without noise metadata), ``placeholder`` (the text emitted for a lost
    sentence).
    """

    def __init__(self, scheme: str = "lm-sscc-ecct", lm: str = "small",
                 snr_db: float = float("nan"), placeholder: str = "<lost>"):
        PduBlock.__init__(self, "genjscc_lm_sentence_decoder")
        from genjscc.core.text.sscc import LMSentenceSource, SentenceChannelCode, scheme_config

        self.source = LMSentenceSource(lm, rows=1)
        self.code = SentenceChannelCode(scheme_config(scheme))
        self.snr_db = float(snr_db)
        self.placeholder = placeholder
        self._lost = 0
        self._lock = threading.Lock()

    def set_snr_db(self, snr_db: float) -> None:
        self.snr_db = float(snr_db)

    def num_lost(self) -> int:
        """Sentences that failed their check (emitted as the placeholder)."""
        with self._lock:
            return self._lost

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, y = parse_pdu(msg, "c32")
        bits = get_long(meta, KEY_NUM_INFO_BITS, low=1, high=8 * MAX_TEXT_BYTES * 4,
                        hint="set by lm_sentence_encoder")
        if bits is None:
            raise PduError("num_info_bits (from lm_sentence_encoder) missing")
        if self.code.channel_uses(bits) != y.size:
            raise PduError(f"{y.size} symbols, but a stream of {bits} bits takes "
                           f"{self.code.channel_uses(bits)}: not this scheme's PDU")
        nv = _noise(meta, y.size, self.snr_db)
        stream = self.code.decode([torch.from_numpy(y)], [torch.from_numpy(nv)], [bits])[0]
        text = self.source.decode([stream])[0]
        if text is None:
            with self._lock:
                self._lost += 1
        snr_db = float(-10 * np.log10(nv.mean()))
        return _text_out(meta, self.placeholder if text is None else text, text is not None,
                         snr_db)
