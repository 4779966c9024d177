"""The classic coders a container may use for a chunk the model predicts badly.

``xz``: a raw LZMA2 stream at preset 9e (what ``xz -9e`` writes, without the .xz framing:
the container has its own lengths and CRCs). ``zstd``: a zstd frame at level 19 without its
checksum. Decoding is bounded: never more than the chunk's declared length is produced, so a
crafted payload cannot blow up memory.
"""

from __future__ import annotations

import lzma

import zstandard

CLASSIC_METHODS = ("xz", "zstd")
_XZ_PRESET = 9 | lzma.PRESET_EXTREME
_XZ_MAX_DICT = 64 << 20  # preset 9's dictionary
ZSTD_LEVEL = 19


def _xz_filters(length: int) -> list[dict]:
    """Preset 9e with a dictionary no larger than the data (a raw stream only references
    back within its own bytes): small chunks code fast and decode with little memory."""
    return [{"id": lzma.FILTER_LZMA2, "preset": _XZ_PRESET,
             "dict_size": min(_XZ_MAX_DICT, max(4096, length))}]


class ClassicDecodeError(ValueError):
    """A classic payload that does not decode to exactly its declared length."""


def classic_compress(method: str, data: bytes) -> bytes:
    """``data`` coded by ``method`` (``xz`` or ``zstd``)."""
    if method == "xz":
        return lzma.compress(data, format=lzma.FORMAT_RAW, filters=_xz_filters(len(data)))
    if method == "zstd":
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, source_size=len(data), write_checksum=False, write_content_size=True)
        return zstandard.ZstdCompressor(compression_params=params).compress(data)
    raise ValueError(f"unknown classic method {method!r}; use one of {CLASSIC_METHODS}")


def classic_decompress(method: str, payload: bytes, length: int) -> bytes:
    """Decode a payload of ``method`` that must give exactly ``length`` bytes."""
    try:
        if method == "xz":
            decoder = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_xz_filters(length))
            data = decoder.decompress(payload, max_length=length + 1)
        elif method == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(payload)
            data = b""
            while len(data) <= length:  # read() may return less than asked before the end
                piece = reader.read(length + 1 - len(data))
                if not piece:
                    break
                data += piece
        else:
            raise ClassicDecodeError(f"unknown classic method {method!r}")
    except (lzma.LZMAError, zstandard.ZstdError) as error:
        raise ClassicDecodeError(f"{method} payload does not decode: {error}") from error
    if len(data) != length:
        raise ClassicDecodeError(f"{method} payload decodes to {len(data)} bytes, "
                                 f"not {length}")
    return data
