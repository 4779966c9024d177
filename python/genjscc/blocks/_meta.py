"""Every PDU metadata key the gr-genjscc blocks read or write, and the typed getters.

A block names a key only through the constants here, and reads a value only through a getter
here, so that one key means one thing (its unit and type are below) in every block, and a bad
value gives the same clear :class:`~genjscc.blocks._pdu.PduError` everywhere. The table of keys
is in docs/design.md ("Contracts").
"""

from __future__ import annotations

import math

import numpy as np
import pmt

from genjscc.blocks._pdu import PduError

__all__ = [
    "KEY_BACKEND",
    "KEY_BACKEND_ERROR",
    "KEY_BACKEND_OK",
    "KEY_BITS_PER_BYTE",
    "KEY_CHANNEL_H",
    "KEY_CHUNK_IDS",
    "KEY_CHUNK_LENGTHS",
    "KEY_CODEWORDS",
    "KEY_CODE_RATE",
    "KEY_COMPRESSED_LENGTH",
    "KEY_CRC_OK",
    "KEY_ESNO_DB",
    "KEY_HEIGHT",
    "KEY_IMAGE_ID",
    "KEY_ITERATIONS",
    "KEY_LM_ERROR",
    "KEY_LM_OK",
    "KEY_LOST_BEFORE",
    "KEY_LOST_CHUNKS",
    "KEY_MCS_INDEX",
    "KEY_MCS_TABLE",
    "KEY_MISSING_SEGMENTS",
    "KEY_MODEL",
    "KEY_MODULATION",
    "KEY_MODULATION_ORDER",
    "KEY_NOISE_VAR",
    "KEY_NUM_BITS",
    "KEY_NUM_INFO_BITS",
    "KEY_NUM_SEGMENTS",
    "KEY_N_CHUNKS",
    "KEY_ORIGINAL_LENGTH",
    "KEY_PACKET_NUM",
    "KEY_PAYLOAD_LENGTHS",
    "KEY_SEGMENT",
    "KEY_SNR_DB",
    "KEY_SPECTRAL_EFFICIENCY",
    "KEY_SYNDROME_OK",
    "KEY_THRESHOLD_DB",
    "KEY_WIDTH",
    "get_float",
    "get_long",
    "get_noise_var",
    "get_symbol",
    "real_number",
]

# --- link: modulation, channel, SNR
KEY_MODULATION = pmt.intern("modulation")  # symbol: constellation name (qam_mapper, demapper)
KEY_NUM_BITS = pmt.intern("num_bits")  # long: bits in (mapper/demapper) or payload bits out
KEY_NOISE_VAR = pmt.intern("noise_var")  # N0 per complex symbol: number or f32 [symbols]
KEY_ESNO_DB = pmt.intern("esno_db")  # double: Es/N0 (dB) the channel applied
KEY_SNR_DB = pmt.intern("snr_db")  # double: Es/N0 per complex symbol (dB)
KEY_LOST_BEFORE = pmt.intern("lost_before")  # long: packets the channel dropped before this
KEY_CHANNEL_H = pmt.intern("channel_h")  # c32 [symbols]: fading coefficients (equalize=False)
KEY_PACKET_NUM = pmt.intern("packet_num")  # long: 12-bit frame counter of the OFDM header

# --- link adaptation: the dict mcs_selector sends (modulation and snr_db as above)
KEY_MCS_INDEX = pmt.intern("mcs_index")  # long: I_MCS of TS 38.214
KEY_MODULATION_ORDER = pmt.intern("modulation_order")  # long: Q_m, bits per symbol
KEY_CODE_RATE = pmt.intern("code_rate")  # double: R
KEY_SPECTRAL_EFFICIENCY = pmt.intern("spectral_efficiency")  # double: Q_m R, bit/s/Hz
KEY_MCS_TABLE = pmt.intern("table")  # long: MCS index table (1 or 2)
KEY_THRESHOLD_DB = pmt.intern("threshold_db")  # double: the chosen MCS's SNR threshold (dB)

# --- channel coding
KEY_NUM_INFO_BITS = pmt.intern("num_info_bits")  # long: payload bits A before padding and CRC
KEY_CODEWORDS = pmt.intern("codewords")  # long: codewords C in the PDU
KEY_CRC_OK = pmt.intern("crc_ok")  # bool: the transport block's CRC passed
KEY_SYNDROME_OK = pmt.intern("syndrome_ok")  # bool: every codeword meets all parity checks
KEY_ITERATIONS = pmt.intern("iterations")  # long: most decoder iterations (-1: not reported)

# --- inference server
KEY_BACKEND_OK = pmt.intern("backend_ok")  # bool: the server answered
KEY_BACKEND = pmt.intern("backend")  # symbol: what decoded the PDU (server address or local)
KEY_BACKEND_ERROR = pmt.intern("backend_error")  # symbol: short code of a server failure

# --- Deep JSCC images
KEY_HEIGHT = pmt.intern("height")  # long: image rows (pixels)
KEY_WIDTH = pmt.intern("width")  # long: image columns (pixels)
KEY_IMAGE_ID = pmt.intern("image_id")  # long: image counter of the encoder
KEY_SEGMENT = pmt.intern("segment")  # long: segment index within the image
KEY_NUM_SEGMENTS = pmt.intern("num_segments")  # long: segments of the image
KEY_MISSING_SEGMENTS = pmt.intern("missing_segments")  # long: segments decoded as zeros

# --- LM source coding
KEY_MODEL = pmt.intern("lm_model")  # symbol: model id of the container
KEY_N_CHUNKS = pmt.intern("lm_n_chunks")  # long: chunks in the container
KEY_CHUNK_IDS = pmt.intern("lm_chunk_ids")  # s32 vector: chunk indices carried
KEY_CHUNK_LENGTHS = pmt.intern("lm_chunk_lengths")  # s32 vector: original bytes per chunk
KEY_PAYLOAD_LENGTHS = pmt.intern("lm_payload_lengths")  # s32 vector: coded bytes per chunk
KEY_ORIGINAL_LENGTH = pmt.intern("lm_original_length")  # long: bytes before compression
KEY_COMPRESSED_LENGTH = pmt.intern("lm_compressed_length")  # long: container bytes
KEY_BITS_PER_BYTE = pmt.intern("lm_bits_per_byte")  # double: compressed bits per input byte
KEY_LM_OK = pmt.intern("lm_ok")  # bool: every chunk was recovered
KEY_LM_ERROR = pmt.intern("lm_error")  # symbol: why not (e.g. chunks_lost)
KEY_LOST_CHUNKS = pmt.intern("lm_lost_chunks")  # s32 vector: chunks not recovered

# --- text (text_jscc_*, lm_sentence_*)
KEY_TEXT_OK = pmt.intern("text_ok")  # bool: the sentence passed its check (LM-SSCC)


def _name(key: pmt.pmt_base) -> str:
    return pmt.symbol_to_string(key)


def real_number(value: pmt.pmt_base, what: str) -> float:
    """A real PMT number as a finite float; PduError naming ``what`` otherwise."""
    if not pmt.is_number(value) or pmt.is_complex(value):
        raise PduError(f"{what} must be a real PMT number")
    out = float(pmt.to_python(value))
    if not math.isfinite(out):
        raise PduError(f"{what} must be finite, got {out}")
    return out


def get_long(meta: pmt.pmt_base, key: pmt.pmt_base, low: int | None = None,
             high: int | None = None, hint: str = "") -> int | None:
    """The integer under ``key`` (a PMT long or uint64); None if absent.

    Raises:
        PduError: not an integer, or outside ``[low, high]`` (the message ends with ``hint``).
    """
    if not pmt.dict_has_key(meta, key):
        return None
    val = pmt.dict_ref(meta, key, pmt.PMT_NIL)
    if not (pmt.is_integer(val) or pmt.is_uint64(val)):
        raise PduError(f"metadata {_name(key)!r} must be an integer, got {pmt.write_string(val)}")
    num = int(pmt.to_uint64(val) if pmt.is_uint64(val) else pmt.to_long(val))
    if (low is not None and num < low) or (high is not None and num > high):
        raise PduError(f"metadata {_name(key)!r} = {num} does not fit this PDU (expected "
                       f"{low}..{high}){'; ' + hint if hint else ''}")
    return num


def get_float(meta: pmt.pmt_base, key: pmt.pmt_base, vector_mean: bool = False
              ) -> float | None:
    """The finite real number under ``key``; None if absent. With ``vector_mean`` a real
    float vector is accepted too and gives its mean (e.g. a per-symbol ``noise_var``).

    Raises:
        PduError: another type, an empty vector, or not finite.
    """
    if not pmt.dict_has_key(meta, key):
        return None
    val = pmt.dict_ref(meta, key, pmt.PMT_NIL)
    if vector_mean and (pmt.is_f32vector(val) or pmt.is_f64vector(val)):
        arr = np.asarray(pmt.to_python(val), dtype=np.float64)
        if arr.size == 0:
            raise PduError(f"metadata {_name(key)!r} is empty")
        out = float(arr.mean())
        if not math.isfinite(out):
            raise PduError(f"metadata {_name(key)!r} must be finite, got {out}")
        return out
    return real_number(val, f"metadata {_name(key)!r}")


def get_symbol(meta: pmt.pmt_base, key: pmt.pmt_base) -> str | None:
    """The string of the PMT symbol under ``key``; None if absent.

    Raises:
        PduError: the value is not a symbol.
    """
    if not pmt.dict_has_key(meta, key):
        return None
    val = pmt.dict_ref(meta, key, pmt.PMT_NIL)
    if not pmt.is_symbol(val):
        raise PduError(f"metadata {_name(key)!r} must be a symbol, got {pmt.write_string(val)}")
    return pmt.symbol_to_string(val)


def get_noise_var(meta: pmt.pmt_base, key: pmt.pmt_base, num_symbols: int
                  ) -> float | np.ndarray | None:
    """Noise variance under ``key``: a float, a float32 array ``[num_symbols]`` or None.

    Accepts a PMT number or a real uniform vector of length 1 (scalar) or ``num_symbols``.

    Raises:
        PduError: a value of another kind or length, or a negative / NaN value.
    """
    if not pmt.dict_has_key(meta, key):
        return None
    val = pmt.dict_ref(meta, key, pmt.PMT_NIL)
    if pmt.is_number(val) and not pmt.is_complex(val):
        out: float | np.ndarray = float(pmt.to_double(val))
        arr = np.asarray([out])
    elif pmt.is_f32vector(val) or pmt.is_f64vector(val):
        arr = np.asarray(pmt.to_python(val), dtype=np.float32)
        if arr.size == 1:
            out = float(arr[0])
        elif arr.size == num_symbols:
            out = arr
        else:
            raise PduError(
                f"metadata {_name(key)!r} has {arr.size} values for "
                f"{num_symbols} symbols; give one value or one per symbol"
            )
    else:
        raise PduError(f"metadata {_name(key)!r} must be a real number or a float vector")
    if not np.all(arr >= 0):
        raise PduError(f"metadata {_name(key)!r} must be >= 0 and not NaN")
    return out
