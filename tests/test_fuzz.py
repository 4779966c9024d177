"""Seeded fuzzing, a few seconds per part: mutated server frames (the protocol parser, then a
real server), random PDUs into the decoder blocks, mutated containers into parse_container.

Each input must give a result or the documented error (ProtocolError / an error reply /
PduError / a GenjsccError), never another exception, a crash or a hang. The longer harness
with counts, hangs and RSS growth is benchmarks/fuzz_serve.py.
"""

from __future__ import annotations

import contextlib
import json
import time

import numpy as np
import pmt
import pytest
import zmq

from genjscc.blocks._pdu import PduError
from genjscc.errors import GenjsccError
from genjscc.serve import protocol as P
from serve_helpers import ServerProcess

SEED = 15


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random edit: flip bits, cut, splice random bytes, or repeat a piece."""
    b = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0 and b:
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        b = b[:int(rng.integers(len(b) + 1))]
    elif kind == 2:
        i = int(rng.integers(len(b) + 1))
        b[i:i] = rng.bytes(int(rng.integers(1, 9)))
    elif b:
        i = int(rng.integers(len(b)))
        b[i:i] = b[i:i + int(rng.integers(1, 16))] * int(rng.integers(1, 4))
    return bytes(b)


def valid_request(rng: np.random.Generator) -> list[bytes]:
    rows = int(rng.integers(0, 4))
    header = {"v": 1, "op": str(rng.choice(["decode", "lm_step", "health", "stats"])),
              "id": int(rng.integers(1 << 30)), "model": "ecct-polar_n64_k32",
              "params": {"num_iters": int(rng.integers(0, 60))}, "timeout_ms": 5000}
    return [bytes(f) for f in P.encode(header, [np.zeros((rows, 64), "<f4")])]


def fuzzed_messages(count: int, seed: int) -> list[list[bytes]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        frames = valid_request(rng)
        i = int(rng.integers(len(frames)))
        frames[i] = mutate(frames[i], rng)
        if rng.random() < 0.1:
            frames.append(rng.bytes(int(rng.integers(0, 64))))
        out.append(frames)
    return out


def test_mutated_frames_into_the_protocol_parser() -> None:
    start = time.monotonic()
    for frames in fuzzed_messages(5000, SEED):
        with contextlib.suppress(P.ProtocolError):
            P.parse_request(frames)
        with contextlib.suppress(P.ProtocolError):
            P.parse_reply(frames)
    assert time.monotonic() - start < 30


def test_mutated_frames_into_a_server() -> None:
    messages = fuzzed_messages(1000, SEED + 1)
    with ServerProcess("--models", "ecct-polar_n64_k32", "--workers", "1") as server:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.endpoint)
        try:
            for frames in messages:
                sock.send_multipart(frames)
            replies = 0
            while replies < len(messages):
                assert sock.poll(20_000), f"no reply after {replies} of {len(messages)}"
                reply = sock.recv_multipart()
                if reply[0] == b"":  # an empty first frame reads as a REQ delimiter: kept
                    reply = reply[1:]
                header, _ = P.parse_reply(reply)
                assert isinstance(header["ok"], bool)
                replies += 1
            sock.send_multipart(P.encode({"v": 1, "op": "health", "id": "last"}))
            assert sock.poll(10_000)
            header, _ = P.parse_reply(sock.recv_multipart())
            assert header["ok"] and header["result"]["status"] == "ok"
        finally:
            sock.close(0)
        assert server.proc.poll() is None


def random_pdu(rng: np.random.Generator) -> pmt.pmt_base:
    kind = int(rng.integers(6))
    size = int(rng.integers(0, 300))
    if kind == 0:
        data = rng.normal(0, 10, size).astype(np.float32)
        data[rng.random(size) < 0.05] = rng.choice([np.nan, np.inf, -np.inf, 1e38])
        vec = pmt.to_pmt(data)
    elif kind == 1:
        data = (rng.normal(size=size) + 1j * rng.normal(size=size)).astype(np.complex64)
        data[rng.random(size) < 0.02] = complex(rng.choice([np.nan, np.inf]), 0.0)
        vec = pmt.to_pmt(data)
    elif kind == 2:
        vec = pmt.to_pmt(rng.integers(0, 256, size).astype(np.uint8))
    elif kind == 3:
        return pmt.intern("not a pdu")
    elif kind == 4:
        return pmt.to_pmt(float(rng.normal()))
    else:
        vec = pmt.to_pmt(rng.normal(0, 10, 64 * int(rng.integers(1, 4))).astype(np.float32))
    meta = pmt.make_dict()
    if rng.random() < 0.3:
        meta = pmt.dict_add(meta, pmt.intern(str(rng.choice(["codewords", "num_info_bits",
                                                             "noise_var", "modulation"]))),
                            pmt.from_long(int(rng.integers(-5, 500))))
    return pmt.cons(meta, vec)


@pytest.mark.parametrize("make", ["ecct", "ldpc", "demapper"])
def test_random_pdus_into_the_decoder_blocks(make: str) -> None:
    from gnuradio import genjscc

    block = {"ecct": lambda: genjscc.ecct_decoder(code="POLAR_N64_K32"),
             "ldpc": lambda: genjscc.ldpc_decoder(code="POLAR_N64_K32", crc="",
                                                  num_iters=5),
             "demapper": lambda: genjscc.soft_demapper(modulation="16qam")}[make]()
    rng = np.random.default_rng(SEED)
    start, results, refused = time.monotonic(), 0, 0
    for _ in range(300):
        try:
            out = block.process(random_pdu(rng))
        except PduError:
            refused += 1
            continue
        results += 1
        data = pmt.to_python(pmt.cdr(out))
        if data.dtype.kind == "f":
            assert np.isfinite(data).all()  # never a silent NaN downstream
    assert results > 0 and refused > 0
    assert time.monotonic() - start < 60


def test_mutated_containers_into_parse_container() -> None:
    from genjscc.core.source.container import parse_container

    blob = (pytest.importorskip("pathlib").Path(__file__).parent / "data" /
            "lm-small-rows3-unblocked.gjz").read_bytes()
    rng = np.random.default_rng(SEED)
    parsed = refused = 0
    for _ in range(3000):
        data = mutate(blob, rng)
        try:
            parse_container(data)
            parsed += 1
        except GenjsccError:
            refused += 1
    assert refused > 0 and parsed + refused == 3000


def test_the_fuzzer_makes_json_the_parser_reads_sometimes() -> None:
    """The mutations keep some headers valid JSON, so deeper checks are reached too."""
    valid = 0
    for frames in fuzzed_messages(500, SEED):
        try:
            json.loads(frames[0])
            valid += 1
        except ValueError:
            pass
    assert 0 < valid < 500
