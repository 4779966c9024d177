"""The classic baseline: an image file (HEIF, or the best of several codecs) protected by a
systematic erasure code (zfec, Reed-Solomon over GF(2^8)) across fixed-size packets.

With ``n`` packets on the wire and redundancy ``r``, ``k = max(1, round(n / (1 + r)))`` packets
carry the file (4-byte length, file, zero padding) and ``n - k`` carry parity; any ``k``
distinct packets give the file back, fewer give nothing (the cliff). Packets have the same
size and the same 20-byte header + CRC overhead as the resilient codec's
(:mod:`genjscc.core.resilient.packets`), so both spend the same bytes on the wire.

Packet: the resilient packets' 16-byte header layout (big-endian: magic ``0xB8``, codec id
(index in ``CODECS``), image id, share index, n, k, height, width, 0), the zfec share, CRC-32.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import torch

from genjscc.core.resilient.packets import CRC_BYTES, HEADER, MIN_PACKET_BYTES, OVERHEAD
from genjscc.core.source.image_codecs import CODECS, EncodedImage, decode_image, encode_to_budget

MAGIC = 0xB8
MAX_SHARES = 256  # zfec's GF(2^8) limit
REDUNDANCIES = (0.0, 0.25, 0.5, 1.0)


def split_packets(num_packets: int, redundancy: float) -> int:
    """Data packets ``k`` of ``num_packets`` at ``redundancy`` (parity / data)."""
    if redundancy < 0:
        raise ValueError(f"redundancy must be >= 0, got {redundancy}")
    return max(1, min(num_packets, round(num_packets / (1.0 + redundancy))))


def best_file(image: torch.Tensor, max_bytes: int, codecs: tuple[str, ...] = ("heif",),
              cache: dict | None = None) -> EncodedImage | None:
    """The highest-PSNR file of ``image`` within ``max_bytes`` among ``codecs``; None when no
    codec fits. ``cache`` (one dict per image) keeps encodings across budgets."""
    from genjscc.core.jscc.images import psnr_db

    cache = {} if cache is None else cache
    best, best_psnr = None, -1.0
    for codec in codecs:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
        enc = encode_to_budget(image, codec, max_bytes, cache.setdefault(codec, {}))
        if enc is None:
            continue
        key = ("psnr", codec, enc.quality)
        if key not in cache:
            cache[key] = float(psnr_db(image, decode_image(enc.data, codec)))
        if cache[key] > best_psnr:
            best, best_psnr = enc, cache[key]
    return best


@dataclass(frozen=True)
class FecImage:
    """A protected file: its packets, ``k`` and the file (None when nothing fits)."""

    packets: list[bytes]
    k: int
    file: EncodedImage | None


def encode_fec(image: torch.Tensor, num_packets: int, packet_bytes: int, redundancy: float,
               codecs: tuple[str, ...] = ("heif",), image_id: int = 0,
               cache: dict | None = None) -> FecImage:
    """``num_packets`` packets of ``packet_bytes`` bytes: the best file that fits ``k`` data
    packets, and ``n - k`` zfec parity packets. No packets when no file fits."""
    import zfec

    if not 1 <= num_packets <= MAX_SHARES:
        raise ValueError(f"num_packets must be in [1, {MAX_SHARES}] (zfec), got {num_packets}")
    if packet_bytes < MIN_PACKET_BYTES:
        raise ValueError(f"packet_bytes must be >= {MIN_PACKET_BYTES}, got {packet_bytes}")
    k = split_packets(num_packets, redundancy)
    share = packet_bytes - OVERHEAD
    file = best_file(image, k * share - 4, codecs, cache)
    if file is None:
        return FecImage([], k, None)
    data = struct.pack(">I", len(file.data)) + file.data
    data += bytes(k * share - len(data))
    blocks = tuple(data[i * share:(i + 1) * share] for i in range(k))
    shares = zfec.Encoder(k, num_packets).encode(blocks)
    h, w = image.shape[1:]
    packets = []
    for i, s in enumerate(shares):
        body = HEADER.pack(MAGIC, CODECS.index(file.codec), image_id & 0xFFFF, i, num_packets,
                           k, h, w, 0) + bytes(s)
        packets.append(body + struct.pack(">I", zlib.crc32(body)))
    return FecImage(packets, k, file)


def decode_fec(packets) -> tuple[torch.Tensor | None, int]:
    """The image from any ``k`` distinct good packets, and the count of rejected ones
    (corrupt, foreign); ``None`` with fewer than ``k`` (the erasure code's cliff)."""
    import zfec

    shares: dict[int, bytes] = {}
    ref = None
    rejected = 0
    for packet in packets:
        p = bytes(packet)
        if len(p) < MIN_PACKET_BYTES or \
                struct.unpack(">I", p[-CRC_BYTES:])[0] != zlib.crc32(p[:-CRC_BYTES]):
            rejected += 1
            continue
        magic, codec, image_id, index, n, k, h, w, _ = HEADER.unpack_from(p)
        fields = (codec, image_id, n, k, h, w, len(p))
        if magic != MAGIC or codec >= len(CODECS) or not 1 <= k <= n or index >= n or \
                (ref is not None and fields != ref):
            rejected += 1
            continue
        ref = fields
        shares.setdefault(index, p[HEADER.size:-CRC_BYTES])
    if ref is None or len(shares) < ref[3]:
        return None, rejected
    codec, _, n, k, h, w, _ = ref
    nums = tuple(sorted(shares)[:k])
    blocks = zfec.Decoder(k, n).decode(tuple(shares[i] for i in nums), nums)
    data = b"".join(bytes(b) for b in blocks)
    length = struct.unpack(">I", data[:4])[0]
    try:
        image = decode_image(data[4:4 + length], CODECS[codec])
    except Exception:  # a file that does not decode is a failure, like a missing one
        return None, rejected
    if tuple(image.shape[1:]) != (h, w):
        return None, rejected
    return image, rejected
