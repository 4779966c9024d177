"""The .gjz container: layout, corruption detection and recovery, the CLI end to end."""

from __future__ import annotations

import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from genjscc.core.source import ContainerError, compress, decompress, load_model, parse_container
from genjscc.core.source.container import (
    ENTRY_SIZE,
    MAGIC,
    ContainerHeader,
    crc32,
    pack_container,
    parse_header,
    placeholder,
)

# 4 chunks of 11 bytes (the last 7); chunk 2 is binary noise that the encoder stores
BINARY11 = bytes([0x00, 0xFF, 0x10, 0x80, 0x7F, 0x01, 0xFE, 0x02, 0x9C, 0xEE, 0x03])
DATA = b"Chunk zero.|Chunk one!" + BINARY11 + b"??|tail"


@pytest.fixture(scope="module")
def small():
    return load_model("small")


@pytest.fixture(scope="module")
def blob(small) -> bytes:
    return compress(DATA, small, chunk_size=11, batch=4, keep_chunks=True)


class ReplayModel:
    """The shipped model with its steps remembered by input history, for the tests that
    decode thousands of damaged copies of one container: every copy whose payloads survive
    feeds the same symbols, so the network's (deterministic) outputs are computed once and
    replayed; the parser, the CRCs and the range decoder still run for real on every copy."""

    def __init__(self, model) -> None:
        self.model = model
        for name in ("model_id", "weights_sha256", "vocab_size", "bos_id", "max_symbols",
                     "default_batch", "device", "arithmetic", "tokenize", "detokenize"):
            setattr(self, name, getattr(model, name))
        self.cache: dict = {}

    def start_state(self, batch: int):
        return (batch,)

    def step(self, state, tokens):
        key = (*state, tuple(tokens.tolist()))
        if key not in self.cache:
            inner = self.cache[state][0] if len(state) > 1 else \
                self.model.start_state(state[0])
            self.cache[key] = self.model.step(inner, tokens)
        return key, self.cache[key][1]


@pytest.fixture(scope="module")
def replay(small) -> ReplayModel:
    return ReplayModel(small)


def header(**changes) -> ContainerHeader:
    fields = dict(original_length=10, chunk_size=4, n_chunks=3, rows=2, threads=1, precision=24,
                  device="cpu", model_id="lm-small", model_sha256="ab" * 32,
                  torch_version="2.13.0+cpu")
    fields.update(changes)
    return ContainerHeader(**fields)


def test_pack_parse_round_trip() -> None:
    payloads = [b"\x01\x02\x03\x04", b"", b"\x05\x06\x07\x08" * 2]
    blob = pack_container(header(), payloads, [4, 4, 2], [1, 2, 3])
    assert blob.startswith(MAGIC)
    parsed = parse_container(blob)
    assert parsed.header == header()
    assert parsed.payloads == payloads
    assert [e.n_symbols for e in parsed.entries] == [4, 4, 2]
    assert [e.plain_crc for e in parsed.entries] == [1, 2, 3]
    assert not parsed.problems and parsed.trailing_bytes == 0
    assert [header().chunk_length(i) for i in range(3)] == [4, 4, 2]


def test_pack_rejects_inconsistent_headers() -> None:
    with pytest.raises(ValueError, match="n_chunks"):
        pack_container(header(n_chunks=2), [b""] * 2, [0, 0], [0, 0])
    with pytest.raises(ValueError, match="device"):
        pack_container(header(device="tpu"), [b""] * 3, [0] * 3, [0] * 3)
    with pytest.raises(ValueError, match="one payload"):
        pack_container(header(), [b""], [0], [0])


@pytest.mark.parametrize("data,match", [
    (b"", "too short"), (b"hello world" * 20, "bad magic"),
    (MAGIC + b"\x00" * 100, "header"),
])
def test_not_a_container(data: bytes, match: str) -> None:
    with pytest.raises(ContainerError, match=match):
        parse_container(data)


def test_row_block_round_trips_in_the_flags_byte(blob: bytes) -> None:
    payloads = [b"\x01\x02\x03\x04", b"", b"\x05"]
    for row_block in (1, 2, 32, 1 << 15):
        packed = pack_container(header(row_block=row_block), payloads, [4, 4, 2], [1, 2, 3])
        assert packed[33] == row_block.bit_length() - 1  # log2 in the flags byte
        assert parse_container(packed).header.row_block == row_block
    with pytest.raises(ValueError, match="row_block"):
        pack_container(header(row_block=3), payloads, [4, 4, 2], [1, 2, 3])
    raw = bytearray(blob)
    raw[33] |= 0x10  # a flag this genjscc does not know
    length = struct.unpack_from("<H", raw, 10)[0]
    raw[length - 4:length] = struct.pack("<I", crc32(bytes(raw[:length - 4])))
    with pytest.raises(ContainerError, match="unknown flags 0x10"):
        parse_container(bytes(raw))


def test_unsupported_version_is_named(blob: bytes) -> None:
    with pytest.raises(ContainerError, match="version 7 is not supported"):
        parse_container(_with_version(blob, 7))


def test_every_single_flipped_byte_is_detected(blob: bytes) -> None:
    for position in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            raw = bytearray(blob)
            raw[position] ^= mask
            try:
                parsed = parse_container(bytes(raw))
            except ContainerError:
                continue
            assert parsed.problems, f"flip {mask:#x} at byte {position} went unnoticed"


def test_corrupt_chunks_are_named_and_others_recovered(small, blob: bytes) -> None:
    parsed = parse_container(blob)
    raw = bytearray(blob)
    raw[parsed.entries[1].offset] ^= 0x10  # payload of chunk 1
    header_length = struct.unpack_from("<H", blob, 10)[0]
    raw[header_length + 2 * ENTRY_SIZE + 3] ^= 0x04  # table entry of chunk 2
    result = decompress(bytes(raw), small)
    assert sorted(result.problems) == [1, 2]
    assert "table entry or payload corrupt" in result.problems[1]
    assert "table entry" in result.problems[2]  # its length field: inconsistent
    assert result.data == DATA[:11] + DATA[33:]
    assert "2 of 4 chunks lost: 1 (table entry or payload" in result.summary()
    filled = decompress(bytes(raw), small, use_placeholder=True)
    assert len(filled.data) == len(DATA)
    assert filled.data == DATA[:11] + placeholder(1, 11) + placeholder(2, 11) + DATA[33:]
    assert placeholder(1, 11) == b"[genjscc: c"


def test_truncated_and_extended_containers(small, blob: bytes) -> None:
    cut = decompress(blob[:-3], small)
    assert list(cut.problems) == [3] and "truncated" in cut.problems[3]
    assert cut.data == DATA[:33]
    longer = decompress(blob + b"junk", small)
    assert longer.data == DATA and not longer.problems
    assert not longer.ok and "4 unexpected bytes" in longer.summary()
    with pytest.raises(ContainerError, match="truncated inside its chunk table"):
        parse_container(blob[:struct.unpack_from("<H", blob, 10)[0] + 5])


def test_random_corruptions_never_crash_or_hang(replay, blob: bytes) -> None:
    """10^4 corruptions, mostly of header and table; each call is checked for time."""
    rng = np.random.default_rng(2024)
    header_length = struct.unpack_from("<H", blob, 10)[0]
    table_end = header_length + 4 * ENTRY_SIZE
    outcomes = {"refused": 0, "chunks lost": 0, "ok": 0}
    slowest = 0.0
    for trial in range(10_000):
        raw = bytearray(blob)
        kind = trial % 5
        if kind == 0:  # a few random bytes in header + table
            for pos in rng.integers(0, table_end, rng.integers(1, 4)):
                raw[pos] = rng.integers(0, 256)
        elif kind == 1:  # a few random bytes anywhere
            for pos in rng.integers(0, len(raw), rng.integers(1, 4)):
                raw[pos] = rng.integers(0, 256)
        elif kind == 2:  # truncation
            raw = raw[:rng.integers(0, len(raw))]
        elif kind == 3:  # random tail after a valid prefix
            cut = int(rng.integers(8, len(raw)))
            raw = raw[:cut] + bytearray(rng.integers(0, 256, rng.integers(0, 64), np.uint8))
        else:  # random garbage behind the magic
            raw = bytearray(MAGIC) + bytearray(rng.integers(0, 256, rng.integers(0, 300),
                                                            np.uint8))
        started = time.perf_counter()
        try:
            result = decompress(bytes(raw), replay)
        except ContainerError:
            outcomes["refused"] += 1
        else:
            if result.ok:
                assert bytes(raw) == blob and result.data == DATA
                outcomes["ok"] += 1
            else:
                outcomes["chunks lost"] += 1
                for index in range(4):  # whatever was recovered is right
                    if index not in result.problems:
                        assert DATA[11 * index:11 * index + 11] in result.data
        slowest = max(slowest, time.perf_counter() - started)
    assert outcomes["refused"] > 1000 and outcomes["chunks lost"] > 1000, outcomes
    assert slowest < 2.0


def test_every_flipped_byte_is_reported_by_decompress(replay, blob: bytes) -> None:
    """Through the whole decoder: a flip anywhere refuses the container or names a chunk,
    and every chunk it does return is the original."""
    chunks = [DATA[i:i + 11] for i in range(0, len(DATA), 11)]
    for position in range(len(blob)):
        raw = bytearray(blob)
        raw[position] ^= 0x01 << (position % 8)
        try:
            result = decompress(bytes(raw), replay, use_placeholder=True)
        except ContainerError:
            continue
        assert result.problems, f"flip at byte {position} went unnoticed"
        assert len(result.data) == len(DATA)
        for index, chunk in enumerate(chunks):
            if index not in result.problems:
                assert result.data[11 * index:11 * index + len(chunk)] == chunk


def test_incompressible_chunks_are_stored(small, blob: bytes) -> None:
    parsed = parse_container(blob)
    assert [e.n_symbols == 0 for e in parsed.entries][:3] == [False, False, True]
    assert parsed.payloads[2] == BINARY11  # stored as is, not a multiple of 4 bytes
    assert decompress(blob, small).data == DATA
    noise = np.random.default_rng(9).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    coded = compress(noise, small, chunk_size=1000, keep_chunks=True)
    assert all(e.n_symbols == 0 for e in parse_container(coded).entries)
    # never worse than the bytes plus the container's header and table
    assert len(coded) == parse_header(coded)[1] + 5 * ENTRY_SIZE + len(noise)
    assert decompress(coded, small).data == noise


def _with_version(blob: bytes, version: int) -> bytes:
    raw = bytearray(blob)
    raw[8:10] = struct.pack("<H", version)
    length = struct.unpack_from("<H", raw, 10)[0]
    raw[length - 4:length] = struct.pack("<I", crc32(bytes(raw[:length - 4])))
    return bytes(raw)


def as_version_1(blob: bytes, stored_ok: bool = False) -> bytes:
    """The same container in the version 1 layout (32-byte entries with offsets and separate
    CRCs of entry and payload), as genjscc wrote it before version 2."""
    parsed = parse_container(blob)
    head_length = parse_header(blob)[1]
    arithmetic = parsed.header.arithmetic.encode()  # version 3's last field: not in version 1
    head = bytearray(blob[:head_length - 5 - len(arithmetic)])
    head[8:10] = struct.pack("<H", 1)
    head[10:12] = struct.pack("<H", len(head) + 4)
    head += struct.pack("<I", crc32(bytes(head)))
    head_length = len(head)
    offset = head_length + 32 * parsed.header.n_chunks
    table = bytearray()
    for index, (entry, payload) in enumerate(zip(parsed.entries, parsed.payloads, strict=True)):
        fields = struct.pack("<QIIIII", offset, len(payload), entry.original_length,
                             entry.n_symbols, crc32(payload), entry.plain_crc)
        table += fields + struct.pack("<I", crc32(struct.pack("<I", index) + fields))
        offset += len(payload)
    return bytes(head) + bytes(table) + b"".join(parsed.payloads)


def test_version_1_containers_still_decode(small) -> None:
    """Version 1 (32-byte entries, no stored chunks) still decodes, damage and all; a
    version 1 container claiming a stored chunk is damaged in that chunk only."""
    text = b"Version one had no stored chunks at all. " * 4
    v1 = as_version_1(compress(text, small, chunk_size=50, keep_chunks=True))
    assert parse_container(v1).header.n_chunks == 4 and len(v1) > len(compress(text, small, 50))
    assert decompress(v1, small).data == text
    damaged = bytearray(v1)
    damaged[parse_container(v1).entries[1].offset] ^= 0x20
    result = decompress(bytes(damaged), small)
    assert list(result.problems) == [1] and "payload corrupt" in result.problems[1]
    assert result.data == text[:50] + text[100:]
    blob = compress(DATA, small, chunk_size=11, batch=4, keep_chunks=True)
    stored = [i for i, e in enumerate(parse_container(blob).entries) if e.n_symbols == 0]
    result = decompress(as_version_1(blob), small)
    assert 2 in stored and sorted(result.problems) == stored
    assert all("inconsistent" in result.problems[i] for i in stored)


def test_older_weights_of_the_same_model_are_refused_clearly(small, blob: bytes) -> None:
    from genjscc.core.source.quantized import QuantizedCoderModel

    newer = QuantizedCoderModel(small.model, "lm-small", "cd" * 32)
    with pytest.raises(ContainerError, match=r"other weights of 'lm-small'.*genjscc version"):
        decompress(blob, newer)


def test_header_fields_of_a_real_container(small, blob: bytes) -> None:
    head, length = parse_header(blob)
    assert head.model_id == "lm-small" and head.model_sha256 == small.weights_sha256
    assert (head.original_length, head.chunk_size, head.n_chunks, head.rows) == (40, 11, 4, 4)
    assert head.precision == 24 and head.device == "cpu"
    assert len(blob) == length + 4 * ENTRY_SIZE + sum(len(p) for p in
                                                       parse_container(blob).payloads)


# ---- the command line ----

def genjscc(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "genjscc.cli", *args], input=stdin,
                          capture_output=True, timeout=120)


def test_cli_round_trip_files_and_pipes(tmp_path) -> None:
    data = DATA * 20 + bytes(range(256))
    (tmp_path / "in.bin").write_bytes(data)
    result = genjscc("compress", str(tmp_path / "in.bin"), str(tmp_path / "c.gjz"),
                     "--chunk", "300", "--batch", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert b"bits/byte" in result.stderr
    piped = genjscc("decompress", "-", "-", "-q", stdin=(tmp_path / "c.gjz").read_bytes())
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout == data
    piped = genjscc("compress", "-", "-", "-q", stdin=b"")
    assert piped.returncode == 0 and piped.stdout.startswith(MAGIC)


def test_cli_errors_are_one_line(tmp_path) -> None:
    missing = genjscc("compress", str(tmp_path / "nope"), str(tmp_path / "out"))
    assert missing.returncode != 0
    assert missing.stderr.decode().strip().count("\n") == 0 and b"Traceback" not in missing.stderr
    (tmp_path / "text").write_bytes(b"not a container at all" * 10)
    bad = genjscc("decompress", str(tmp_path / "text"), str(tmp_path / "out"))
    assert bad.returncode != 0 and b"bad magic" in bad.stderr and b"Traceback" not in bad.stderr
    unknown = genjscc("compress", str(tmp_path / "text"), str(tmp_path / "o"), "--model", "zz")
    assert unknown.returncode != 0 and b"unknown model" in unknown.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "out").exists()


def test_cli_names_corrupt_chunks_and_writes_placeholders(tmp_path, blob: bytes) -> None:
    raw = bytearray(blob)
    raw[parse_container(blob).entries[2].offset] ^= 0x01
    (tmp_path / "bad.gjz").write_bytes(bytes(raw))
    result = genjscc("decompress", str(tmp_path / "bad.gjz"), str(tmp_path / "out"),
                     "--placeholder", "-q")
    assert result.returncode != 0
    message = result.stderr.decode().strip()
    assert message.count("\n") == 0
    assert "1 of 4 chunks lost: 2 (table entry or payload corrupt" in message
    assert (tmp_path / "out").read_bytes() == DATA[:22] + placeholder(2, 11) + DATA[33:]
