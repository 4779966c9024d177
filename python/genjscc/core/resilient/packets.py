"""Packets of the loss-resilient image codec: tokens interleaved across fixed-size packets,
each range-coded on its own with a static integer table, so that any subset decodes.

Packet layout (big-endian header, ``packet_bytes`` in all, zero padding before the CRC):

====== ===== ===============================================================
offset bytes field
====== ===== ===============================================================
0      1     magic ``0xB7`` (format 1)
1      1     flags (0)
2      2     image id (an application's counter, modulo 2**16)
4      2     packet index ``p`` (0 .. count-1)
6      2     count: distinct packets of the image
8      2     image height (pixels)
10     2     image width (pixels)
12     2     tokens coded in this packet (a prefix of its slot list)
14     2     data length in 32-bit words
16     4 n   range coder words (little-endian u32), then zeros
P-4    4     CRC-32 (zlib) of bytes 0 .. P-5
====== ===== ===============================================================

Token ``j`` of the raster-ordered grid has slot ``order^-1(j)``: ``order`` is a fixed
pseudo-random permutation of the grid (numpy's frozen legacy ``RandomState``, the same on
every machine), and packet ``p`` holds the tokens at ``order[p::count]``, so a lost packet
removes tokens scattered over the whole image and the transformer conceals each from its
received neighbours. A packet that cannot hold all its tokens codes a prefix of them (the
rest are concealed as if lost): that is how a budget below the codec's natural rate is met.

Coding is exact by construction: the coder's distribution is a static integer table
(:func:`frequency_table`, stored in the weights file), identical on every machine; no float
of the model touches it, so no packet depends on another and none on the CPU.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from constriction import stream as _stream

from genjscc.core.source.coding import PRECISION, integer_weights

MAGIC = 0xB7
HEADER = struct.Struct(">BBHHHHHHH")  # magic, flags, image id, index, count, H, W, tokens, words
CRC_BYTES = 4
OVERHEAD = HEADER.size + CRC_BYTES  # 20 bytes per packet
MIN_PACKET_BYTES = OVERHEAD + 8
MAX_COUNT = 0xFFFF
_ORDER_SEED = 0x5EED


def frequency_table(counts) -> np.ndarray:
    """Integer table ``q`` (int64 ``[V]``) from token counts: ``q >= 1``, ``sum(q) == 2**24``.

    ``floor(c * (2**24 - V) / sum(c)) + 1`` in integer arithmetic, the remainder to the first
    most frequent token; counts must be non-negative integers with a positive sum.
    """
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    if c.size < 2 or (c < 0).any() or c.sum() <= 0:
        raise ValueError("counts must be >= 0 with a positive sum, at least 2 entries")
    budget = (1 << PRECISION) - c.size
    q = (c * budget) // c.sum()
    q[int(np.argmax(q))] += budget - int(q.sum())
    return q + 1


def interleave_order(num_tokens: int) -> np.ndarray:
    """The fixed permutation that deals a grid's tokens (raster order) to packets."""
    return np.random.RandomState(_ORDER_SEED).permutation(num_tokens)


def packet_slots(num_tokens: int, count: int) -> list[np.ndarray]:
    """Raster indices of the tokens of each of ``count`` packets, in coding order."""
    order = interleave_order(num_tokens)
    return [order[p::count] for p in range(count)]


class TokenCoder:
    """Range coder of tokens under a static integer table ``q`` (rows sum to 2**24)."""

    def __init__(self, frequencies) -> None:
        q = np.asarray(frequencies, dtype=np.int64).reshape(1, -1)
        weights = integer_weights(q)[0]  # checks the table's contract
        self.frequencies = q[0]
        self.bits = -np.log2(q[0] / float(1 << PRECISION))  # ideal cost of each token
        self._model = _stream.model.Categorical(weights, perfect=False)

    @property
    def vocab(self) -> int:
        return int(self.frequencies.size)

    def encode(self, symbols: np.ndarray) -> bytes:
        enc = _stream.queue.RangeEncoder()
        if len(symbols):
            enc.encode(np.ascontiguousarray(symbols, dtype=np.int32), self._model)
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, num_symbols: int) -> np.ndarray:
        """``num_symbols`` tokens; ValueError if the data cannot be decoded."""
        if len(data) % 4:
            raise ValueError("range coder data must be whole 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        dec = _stream.queue.RangeDecoder(words)
        try:
            out = dec.decode(self._model, int(num_symbols))
        except Exception as err:  # constriction rejects some corrupt streams
            raise ValueError(f"range decoder rejected the data: {err}") from None
        return np.asarray(out, dtype=np.int64)

    def fit_prefix(self, symbols: np.ndarray, capacity: int) -> tuple[int, bytes]:
        """The longest prefix of ``symbols`` whose code fits ``capacity`` bytes, and its code."""
        cum = np.cumsum(self.bits[symbols]) if len(symbols) else np.zeros(0)
        n = int(np.searchsorted(cum, 8 * capacity - 64, side="right"))
        data = self.encode(symbols[:n])
        while len(data) > capacity and n > 0:
            n -= 1
            data = self.encode(symbols[:n])
        while n < len(symbols):  # the estimate may be short by a token or two
            more = self.encode(symbols[:n + 1])
            if len(more) > capacity:
                break
            n, data = n + 1, more
        return n, data


@dataclass(frozen=True)
class PacketHeader:
    image_id: int
    index: int
    count: int
    height: int
    width: int
    num_tokens: int
    num_words: int


def pack(header: PacketHeader, data: bytes, packet_bytes: int) -> bytes:
    body = HEADER.pack(MAGIC, 0, header.image_id & 0xFFFF, header.index, header.count,
                       header.height, header.width, header.num_tokens, header.num_words) + data
    body += bytes(packet_bytes - CRC_BYTES - len(body))
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(packet: bytes) -> tuple[PacketHeader, bytes]:
    """Header and coder data of one packet; ValueError for a corrupt or foreign packet."""
    if not isinstance(packet, bytes | bytearray | memoryview):
        raise ValueError(f"a packet must be bytes, got {type(packet).__name__}")
    packet = bytes(packet)
    if len(packet) < MIN_PACKET_BYTES:
        raise ValueError(f"packet of {len(packet)} bytes is shorter than {MIN_PACKET_BYTES}")
    if struct.unpack(">I", packet[-CRC_BYTES:])[0] != zlib.crc32(packet[:-CRC_BYTES]):
        raise ValueError("CRC mismatch")
    magic, _flags, image_id, index, count, h, w, ntok, nwords = HEADER.unpack_from(packet)
    if magic != MAGIC:
        raise ValueError(f"not a resilient image packet (magic {magic:#x})")
    if count < 1 or index >= count or h < 1 or w < 1:
        raise ValueError("inconsistent header (index, count or size)")
    end = HEADER.size + 4 * nwords
    if end > len(packet) - CRC_BYTES:
        raise ValueError("data length beyond the packet")
    return PacketHeader(image_id, index, count, h, w, ntok, nwords), packet[HEADER.size:end]


@dataclass
class ReceivedTokens:
    """What the packets of one image gave: the token grid (raster, -1 where unknown), the
    packet count, and the tally of packets received, duplicated and rejected."""

    header: PacketHeader | None
    tokens: np.ndarray | None  # int64 [num_tokens], -1 = not received
    received: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def encode_tokens(coder: TokenCoder, tokens: np.ndarray, height: int, width: int,
                  packet_bytes: int, num_packets: int | None = None,
                  image_id: int = 0) -> list[bytes]:
    """Packets of a raster-ordered token grid.

    ``num_packets=None``: as many packets as the tokens need (the natural rate). Otherwise
    exactly ``num_packets`` packets on the wire: when the tokens need more, each packet codes
    the prefix that fits; when they need fewer, the needed packets are followed by copies of
    them in turn (repetition, spaced ``count`` packets apart against bursts).
    """
    if packet_bytes < MIN_PACKET_BYTES or packet_bytes - OVERHEAD > 4 * 0xFFFF:
        raise ValueError(f"packet_bytes must be in [{MIN_PACKET_BYTES}, {OVERHEAD + 4 * 0xFFFF}], "
                         f"got {packet_bytes}")
    if num_packets is not None and not num_packets >= 1:
        raise ValueError(f"num_packets must be >= 1, got {num_packets}")
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if not (0 < height <= 0xFFFF and 0 < width <= 0xFFFF):
        raise ValueError(f"image size {height}x{width} out of range (1..65535)")
    capacity = (packet_bytes - OVERHEAD) // 4 * 4
    bits = float(coder.bits[tokens].sum())
    count = max(1, int(np.ceil(bits / (8 * capacity - 64))))
    while True:
        if count > MAX_COUNT or count > max(1, tokens.size):
            raise ValueError(f"{tokens.size} tokens do not fit {MAX_COUNT} packets of "
                             f"{packet_bytes} bytes; use larger packets")
        limit = count if num_packets is None else min(count, num_packets)
        coded = [coder.fit_prefix(tokens[s], capacity) for s in packet_slots(tokens.size, limit)]
        complete = all(n == len(s) for (n, _), s in
                       zip(coded, packet_slots(tokens.size, limit), strict=True))
        if complete or limit < count:
            break
        count += 1
    packets = [pack(PacketHeader(image_id, p, limit, height, width, n, len(data) // 4), data,
                    packet_bytes) for p, (n, data) in enumerate(coded)]
    if num_packets is not None:
        packets = [packets[i % limit] for i in range(num_packets)]
    return packets


def decode_tokens(coder: TokenCoder, packets, num_tokens_of) -> ReceivedTokens:
    """Tokens from any subset of one image's packets, in any order.

    ``num_tokens_of(height, width)`` gives the grid's token count. Packets that fail the CRC,
    disagree with the first good packet (image id, count, size), claim more tokens than their
    slots or do not decode are rejected and counted; repeated indices are counted and ignored.
    """
    out = ReceivedTokens(header=None, tokens=None)
    seen: set[int] = set()
    slots: list[np.ndarray] | None = None
    for packet in packets:
        try:
            head, data = unpack(packet)
            if out.header is None:
                n = num_tokens_of(head.height, head.width)
                if head.count > max(1, n):
                    raise ValueError(f"{head.count} packets for {n} tokens")
            else:
                ref = out.header
                if (head.image_id, head.count, head.height, head.width) != \
                        (ref.image_id, ref.count, ref.height, ref.width):
                    raise ValueError("packet of another image (id, count or size differ)")
            if head.index in seen:
                out.duplicates += 1
                continue
            if out.header is None:
                slots = packet_slots(n, head.count)
                grid = np.full(n, -1, dtype=np.int64)
            mine = slots[head.index]
            if head.num_tokens > len(mine):
                raise ValueError(f"{head.num_tokens} tokens for {len(mine)} slots")
            symbols = coder.decode(data, head.num_tokens)
            if (symbols < 0).any() or (symbols >= coder.vocab).any():
                raise ValueError("decoded token out of range")
        except ValueError as err:
            out.rejected += 1
            out.errors.append(str(err))
            continue
        if out.header is None:
            out.header, out.tokens = head, grid
        out.tokens[mine[:head.num_tokens]] = symbols
        seen.add(head.index)
        out.received += 1
    return out
