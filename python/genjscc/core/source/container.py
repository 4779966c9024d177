"""The ``.gjz`` container of LM-compressed data: header, chunk table, payloads.

Byte layout (all integers little-endian; the tables are in docs/lm-compression.md):

* header: magic ``89 47 4A 5A 0D 0A 1A 0A`` (``\\x89GJZ\\r\\n\\x1a\\n``, PNG-style, so
  text-mode mangling is caught), version, header length, original length, chunk size, chunk
  count, coder parameters (rows, threads, precision, device kind), model sha256, model id,
  torch version, (version 3) the arithmetic that computed the probabilities, and a CRC-32 of
  all header bytes before it;
* chunk table: one 16-byte entry per chunk: payload length, method and symbol count (version
  3: method in the top 4 bits), CRC-32 of the chunk's original bytes, and a CRC-32 of the
  entry's index, its first 12 bytes and the payload;
* payloads, in chunk order: the range coder's 32-bit little-endian words (method ``model``),
  the chunk's original bytes (``stored``), or a raw LZMA2 (``xz``) or zstd frame (``zstd``)
  of them, whichever was smallest when the chunk was coded.

Version 3's arithmetic field says whether any machine can decode: ``int8-lut/1`` (lm-small's
integer inference) is the same everywhere; a float model records a fingerprint of the
arithmetic (device, CPU kernel set and model, torch version, dtype), and a decoder whose own
fingerprint differs refuses before decoding, naming both.

Payload offsets are the running sums of the payload lengths. The parser locates the chunks
from the front until an entry's CRC fails, then from the end of the container backwards, so a
single damaged entry or payload loses only its own chunk; two damaged ones lose the chunks
from the first to the second. Every byte is covered by a CRC, so any single flipped byte is
detected: in the header the whole container is refused; in an entry or a payload that chunk is
lost, found before any model runs. The parser never trusts a length it has not checked, so
random data cannot make it allocate or loop without bound.

Version 1 (read, no longer written) had 32-byte entries with the payload offset, the original
length and separate CRCs of the entry and the payload, and no stored chunks: 16 more bytes per
chunk (0.06 bits/byte at 2048-byte chunks).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from genjscc.errors import GenjsccError

MAGIC = b"\x89GJZ\r\n\x1a\n"
VERSION = 3  # 3: arithmetic field, per-chunk method; 2: 16-byte entries, stored chunks
READ_VERSIONS = (1, 2, 3)
METHODS = ("model", "stored", "xz", "zstd")  # version 3 entries: index in the top 4 bits
METHOD_SHIFT = 28
SYMBOLS_MASK = (1 << METHOD_SHIFT) - 1
DEVICE_CODES = {"cpu": 0, "cuda": 1}
ENTRY_SIZE = 16
ROW_BLOCK_MASK = 0x0F  # flags bits holding log2 of the row block; the others must be 0
ROW_BLOCKS = tuple(1 << k for k in range(16))
ENTRY_SIZE_V1 = 32
MAX_CHUNK_SIZE = 1 << 24
# magic, version, header length, original length, chunk size, chunk count, rows, threads,
# precision, device, flags, model sha256
_FIXED = struct.Struct("<8sHHQIIHBBBB32s")
_ENTRY = struct.Struct("<III")  # payload length, symbol count, CRC-32 of the original bytes
_ENTRY_V1 = struct.Struct("<QIIIII")  # offset, payload length, original length, symbols, 2 CRCs
_MIN_HEADER = _FIXED.size + 1 + 1 + 4


class ContainerError(GenjsccError):
    """The container as a whole cannot be read (not a container, corrupt header, wrong model)."""


@dataclass(frozen=True)
class ContainerHeader:
    """What the decoder needs besides the payloads.

    Attributes:
        original_length: bytes of the uncompressed data.
        chunk_size: bytes per chunk (the last chunk may be shorter).
        n_chunks: ``ceil(original_length / chunk_size)``.
        rows: rows of every model call while coding (micro-batch size).
        threads: torch threads while coding.
        precision: bits of the fixed-point probabilities (24).
        device: device kind that computed the probabilities (``"cpu"`` or ``"cuda"``).
        model_id: model identifier (``lm-small``, ``smollm2-135m``, ``hf:NAME``, ...).
        model_sha256: hex sha256 of the model's weights.
        torch_version: torch version that computed the probabilities.
        row_block: every model call's row count was padded to a multiple of this (a power of
            two up to 2**15; 1 = no padding). Stored as its log2 in the low 4 bits of the
            header's flags byte, so a reader older than row blocks refuses such a container
            ("unknown flags") instead of decoding it wrong.
        arithmetic: what computed the probabilities (version 3; ``""`` in older versions):
            an exact arithmetic's name such as ``int8-lut/1``, or ``float:`` and a
            fingerprint of the machine's arithmetic.
    """

    original_length: int
    chunk_size: int
    n_chunks: int
    rows: int
    threads: int
    precision: int
    device: str
    model_id: str
    model_sha256: str
    torch_version: str
    row_block: int = 1
    arithmetic: str = ""

    def chunk_length(self, index: int) -> int:
        """Original bytes of chunk ``index`` (all ``chunk_size`` except maybe the last)."""
        return min(self.chunk_size, self.original_length - index * self.chunk_size)


@dataclass(frozen=True)
class ChunkEntry:
    """A located and checked chunk: where its payload is and what its entry says.

    ``payload_crc`` is the CRC of the entry and payload (version 1: of the payload);
    ``original_length`` is implied by the header from version 2 on; ``method`` is one of
    :data:`METHODS`.
    """

    offset: int
    payload_length: int
    original_length: int
    n_symbols: int
    payload_crc: int
    plain_crc: int
    method: str = "model"


@dataclass
class ParsedContainer:
    """A parsed container: header, the payloads that passed their checks, and what failed.

    ``payloads[i]`` is ``None`` for every chunk in ``problems`` (chunk index -> reason).
    """

    header: ContainerHeader
    entries: list[ChunkEntry | None]
    payloads: list[bytes | None]
    problems: dict[int, str] = field(default_factory=dict)
    trailing_bytes: int = 0


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib) of ``data``."""
    return zlib.crc32(data) & 0xFFFFFFFF


def chunk_count(original_length: int, chunk_size: int) -> int:
    return -(-original_length // chunk_size)


def _validate_header(h: ContainerHeader) -> None:
    if not 1 <= h.chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be in [1, {MAX_CHUNK_SIZE}], got {h.chunk_size}")
    if h.n_chunks != chunk_count(h.original_length, h.chunk_size):
        raise ValueError("n_chunks does not match original_length and chunk_size")
    if not 1 <= h.rows <= max(1, h.n_chunks) or not 1 <= h.threads <= 0xFF:
        # rows above the chunk count would only make a decoder step empty rows
        raise ValueError("rows must be in [1, number of chunks] and threads in [1, 255]")
    if h.device not in DEVICE_CODES:
        raise ValueError(f"device must be one of {sorted(DEVICE_CODES)}")
    if h.row_block not in ROW_BLOCKS:
        raise ValueError(f"row_block must be a power of two in [1, {ROW_BLOCKS[-1]}]")
    if len(bytes.fromhex(h.model_sha256)) != 32:
        raise ValueError("model_sha256 must be 64 hex digits")
    if len(h.arithmetic.encode("utf-8")) > 255:
        raise ValueError("arithmetic longer than 255 bytes")


def pack_container(header: ContainerHeader, payloads: list[bytes], n_symbols: list[int],
                   plain_crcs: list[int], methods: list[str] | None = None) -> bytes:
    """Serialize a container; ``payloads``, ``n_symbols``, ``plain_crcs`` and ``methods``
    (default: ``model`` for every chunk) have one per chunk; a ``model`` chunk's symbol count
    is below ``2**28``, other methods' are 0."""
    _validate_header(header)
    methods = methods or ["model"] * header.n_chunks
    if not len(payloads) == len(n_symbols) == len(plain_crcs) == len(methods) \
            == header.n_chunks:
        raise ValueError("need one payload, symbol count, CRC and method per chunk")
    model_id = header.model_id.encode("utf-8")
    torch_version = header.torch_version.encode("ascii", "replace")[:255]
    arithmetic = header.arithmetic.encode("utf-8")
    if len(model_id) > 255:
        raise ValueError("model id longer than 255 bytes")
    header_length = _FIXED.size + 3 + len(model_id) + len(torch_version) + len(arithmetic) + 4
    head = _FIXED.pack(MAGIC, VERSION, header_length, header.original_length, header.chunk_size,
                       header.n_chunks, header.rows, header.threads, header.precision,
                       DEVICE_CODES[header.device], ROW_BLOCKS.index(header.row_block),
                       bytes.fromhex(header.model_sha256))
    for field_bytes in (model_id, torch_version, arithmetic):
        head += bytes([len(field_bytes)]) + field_bytes
    head += struct.pack("<I", crc32(head))
    table = bytearray()
    for index, payload in enumerate(payloads):
        method, symbols = methods[index], n_symbols[index]
        if method not in METHODS or not 0 <= symbols <= SYMBOLS_MASK or \
                (method != "model" and symbols):
            raise ValueError(f"chunk {index}: method {method!r} with {symbols} symbols")
        packed = METHODS.index(method) << METHOD_SHIFT | symbols
        entry = _ENTRY.pack(len(payload), packed, plain_crcs[index])
        table += entry + struct.pack("<I", _entry_crc(index, entry, payload))
    return head + bytes(table) + b"".join(payloads)


def _entry_crc(index: int, entry: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<I", index) + entry)) & 0xFFFFFFFF


def parse_header(data: bytes) -> tuple[ContainerHeader, int]:
    """The checked header and its length; ContainerError if the header cannot be trusted."""
    if len(data) < _MIN_HEADER:
        raise ContainerError(f"not a genjscc container: {len(data)} bytes is too short")
    (magic, version, header_length, original_length, chunk_size, n_chunks, rows, threads,
     precision, device_code, flags, sha) = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError("not a genjscc container (bad magic number)")
    if not _MIN_HEADER <= header_length <= len(data):
        raise ContainerError("container header is corrupt (impossible header length)")
    stored_crc = struct.unpack_from("<I", data, header_length - 4)[0]
    if crc32(data[:header_length - 4]) != stored_crc:
        raise ContainerError("container header is corrupt (CRC mismatch); no chunk can be read")
    if version not in READ_VERSIONS:
        raise ContainerError(f"container version {version} is not supported "
                             f"(this genjscc reads versions "
                             f"{', '.join(map(str, READ_VERSIONS))})")
    pos = _FIXED.size
    id_length = data[pos]
    model_id = data[pos + 1:pos + 1 + id_length]
    pos += 1 + id_length
    if pos >= header_length - 4:
        raise ContainerError("container header is corrupt (model id overruns it)")
    version_length = data[pos]
    torch_version = data[pos + 1:pos + 1 + version_length]
    pos += 1 + version_length
    arithmetic = b""
    if version >= 3:
        if pos >= header_length - 4:
            raise ContainerError("container header is corrupt (torch version overruns it)")
        arithmetic = data[pos + 1:pos + 1 + data[pos]]
        pos += 1 + data[pos]
    if pos != header_length - 4:
        raise ContainerError("container header is corrupt (inconsistent field lengths)")
    devices = {code: name for name, code in DEVICE_CODES.items()}
    if flags & ~ROW_BLOCK_MASK:
        raise ContainerError(f"container uses unknown flags {flags:#x}; upgrade genjscc")
    try:
        header = ContainerHeader(
            original_length=original_length, chunk_size=chunk_size, n_chunks=n_chunks,
            rows=rows, threads=threads, precision=precision, device=devices[device_code],
            model_id=model_id.decode("utf-8"), model_sha256=sha.hex(),
            torch_version=torch_version.decode("ascii"),
            row_block=ROW_BLOCKS[flags & ROW_BLOCK_MASK], arithmetic=arithmetic.decode("utf-8"))
        _validate_header(header)
    except (KeyError, UnicodeDecodeError, ValueError) as error:
        raise ContainerError(f"container header is inconsistent: {error}") from error
    return header, header_length


def parse_container(data: bytes) -> ParsedContainer:
    """Parse and check a container without running any model.

    Raises ContainerError when the header is unusable. Chunk-level damage (corrupt table
    entry, truncated or corrupt payload) is recorded in ``problems`` instead.
    """
    data = bytes(data)
    header, header_length = parse_header(data)
    version = header_version(data)
    entry_size = ENTRY_SIZE if version >= 2 else ENTRY_SIZE_V1
    table_end = header_length + entry_size * header.n_chunks
    if table_end > len(data):  # the payloads come after the table: nothing is left to decode
        present = (len(data) - header_length) // entry_size
        raise ContainerError(f"container truncated inside its chunk table ({present} of "
                             f"{header.n_chunks} entries present, no payload)")
    if entry_size == ENTRY_SIZE_V1:
        return _parse_v1(data, header, header_length, table_end)
    n = header.n_chunks
    fields = [_ENTRY.unpack_from(data, header_length + ENTRY_SIZE * i) for i in range(n)]
    entries: list[ChunkEntry | None] = [None] * n
    problems: dict[int, str] = {}

    def locate(index: int, offset: int) -> str | None:
        """None if chunk ``index`` checks out at ``offset`` (then its entry is recorded)."""
        length, packed, plain_crc = fields[index]
        expected = header.chunk_length(index)
        method, n_symbols = _method_of(version, packed, expected)
        # a byte is at most 2 symbols (escaped byte of a token model)
        if method is None or n_symbols > 2 * expected or \
                (method == "stored" and length != expected) or \
                (method == "model" and (length % 4 or n_symbols == 0 < expected)) or \
                (method in ("xz", "zstd") and (n_symbols or length == 0)):
            return "chunk table entry inconsistent with the header"
        if offset < table_end or offset + length > len(data):
            return "payload truncated" if offset >= table_end else "payload cannot be located"
        start = header_length + ENTRY_SIZE * index
        crc = struct.unpack_from("<I", data, start + 12)[0]
        if _entry_crc(index, data[start:start + 12], data[offset:offset + length]) != crc:
            return "table entry or payload corrupt (CRC mismatch)"
        entries[index] = ChunkEntry(offset, length, expected, n_symbols, crc, plain_crc, method)
        return None

    offset, first_bad = table_end, n
    for index in range(n):  # from the front
        problem = locate(index, offset)
        if problem:
            problems[index], first_bad = problem, index
            break
        offset += fields[index][0]
    trailing = len(data) - offset if first_bad == n else 0
    end = len(data)
    for index in range(n - 1, first_bad, -1):  # then from the end, back to the damage
        start = end - fields[index][0]
        problem = locate(index, start)
        if problem:
            problems[index] = problem
            break
        end = start
    for index in range(first_bad + 1, n):
        if entries[index] is None and index not in problems:
            problems[index] = "cannot be located: a table entry or payload before it is damaged"
    payloads = [data[e.offset:e.offset + e.payload_length] if e is not None else None
                for e in entries]
    return ParsedContainer(header, entries, payloads, dict(sorted(problems.items())), trailing)


def _parse_v1(data: bytes, header: ContainerHeader, header_length: int,
              table_end: int) -> ParsedContainer:
    entries: list[ChunkEntry | None] = []
    payloads: list[bytes | None] = []
    problems: dict[int, str] = {}
    end = table_end
    for index in range(header.n_chunks):
        entry, payload, problem = _read_chunk_v1(data, header, header_length, table_end, index)
        entries.append(entry if payload is not None else None)
        payloads.append(payload)
        if problem:
            problems[index] = problem
        if entry is not None:
            end = max(end, entry.offset + entry.payload_length)
    trailing = len(data) - end if not problems else 0
    return ParsedContainer(header, entries, payloads, problems, max(trailing, 0))


def _read_chunk_v1(data: bytes, header: ContainerHeader, header_length: int, table_end: int,
                   index: int) -> tuple[ChunkEntry | None, bytes | None, str | None]:
    start = header_length + ENTRY_SIZE_V1 * index
    raw = data[start:start + ENTRY_SIZE_V1 - 4]
    stored = struct.unpack_from("<I", data, start + ENTRY_SIZE_V1 - 4)[0]
    if crc32(struct.pack("<I", index) + raw) != stored:
        return None, None, "chunk table entry corrupt (CRC mismatch)"
    entry = ChunkEntry(*_ENTRY_V1.unpack(raw))
    expected_length = header.chunk_length(index)
    # a byte is at most 2 symbols; version 1 has no stored chunks (symbol count 0)
    if entry.original_length != expected_length or entry.n_symbols > 2 * expected_length \
            or (entry.n_symbols == 0 and entry.original_length > 0):
        return None, None, "chunk table entry inconsistent with the header"
    if entry.offset < table_end or entry.payload_length % 4:
        return entry, None, "chunk table entry has an impossible payload offset or length"
    if entry.offset + entry.payload_length > len(data):
        return entry, None, "payload truncated"
    payload = data[entry.offset:entry.offset + entry.payload_length]
    if crc32(payload) != entry.payload_crc:
        return entry, None, "payload corrupt (CRC mismatch)"
    return entry, payload, None


def _method_of(version: int, packed: int, expected: int) -> tuple[str | None, int]:
    """(method, symbol count) of a table entry's second field; method None if unknown."""
    if version < 3:  # version 2: symbol count 0 of a non-empty chunk = stored
        return ("stored" if packed == 0 and expected > 0 else "model"), packed
    code = packed >> METHOD_SHIFT
    return (METHODS[code] if code < len(METHODS) else None), packed & SYMBOLS_MASK


def is_stored(entry: ChunkEntry) -> bool:
    """A stored chunk: the payload is the original bytes. The encoder stores a chunk when no
    method makes it smaller (random or already compressed data), so no chunk costs more than
    its own length plus its table entry."""
    return entry.method == "stored"


def header_version(data: bytes) -> int:
    """The version field of a container whose header was checked."""
    return struct.unpack_from("<H", data, 8)[0]


def placeholder(index: int, length: int) -> bytes:
    """Marked filler of exactly ``length`` bytes for a lost chunk (keeps later offsets)."""
    mark = f"[genjscc: chunk {index} lost, {length} bytes]".encode()
    return (mark * (length // len(mark) + 1))[:length]
