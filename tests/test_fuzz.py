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
from genjscc.testing.fuzz import jscc_image_frames, mutate, random_pdu, tampered_jscc_frame
from serve_helpers import ServerProcess

SEED = 15


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


def test_tampered_jscc_frames_into_the_image_decoder() -> None:
    """Real frames with cut, spiked or lengthened symbols and forged metadata: each gives an
    image, is kept as a segment, or is refused; a frame of another size for the image being
    collected is refused (it used to raise a numpy broadcast error)."""
    from gnuradio import genjscc

    frames = jscc_image_frames()
    dec = genjscc.jscc_image_decoder(symbols_per_frame=128)
    dec.logger.set_level("off")
    rng = np.random.default_rng(SEED)
    outcomes = {"image": 0, "held": 0, "refused": 0}
    for _ in range(300):
        try:
            out = dec.process(tampered_jscc_frame(frames, rng))
        except PduError:
            outcomes["refused"] += 1
            continue
        outcomes["image" if out else "held"] += 1
        for msg in out:
            assert np.isfinite(pmt.to_python(pmt.cdr(msg)).astype(float)).all()
    assert all(outcomes.values()), outcomes
    dec.process(frames[0])
    longer = pmt.cons(pmt.car(frames[1]), pmt.to_pmt(np.zeros(167, np.complex64)))
    with pytest.raises(PduError, match="frames carry 128"):
        dec.process(longer)
    for forged in (1e12, float("nan"), -1e3):  # an SNR no channel has: refused
        meta = pmt.dict_add(pmt.car(frames[1]), pmt.intern("snr_db"), pmt.from_double(forged))
        with pytest.raises(PduError, match=r"SNR|snr_db"):
            dec.process(pmt.cons(meta, pmt.cdr(frames[1])))
    images = [m for f in frames[1:] for m in dec.process(f)]  # the image is still whole
    assert len(images) == 1 and pmt.to_long(pmt.dict_ref(
        pmt.car(images[0]), pmt.intern("missing_segments"), pmt.PMT_NIL)) == 0


def test_mutated_containers_into_decompress() -> None:
    """The CLI's path: each mutated container gives its bytes, names its lost chunks, or is
    refused; nothing claims to be whole with other bytes."""
    from genjscc.core.source import compress, decompress, load_model

    model = load_model("small")
    text = b"Mutated containers must never decode to other bytes that claim to be whole. " * 2
    blob = compress(text, model, chunk_size=48, keep_chunks=True)
    rng = np.random.default_rng(SEED)
    outcomes = {"whole": 0, "lost": 0, "refused": 0}
    for _ in range(100):
        try:
            result = decompress(mutate(blob, rng), model, max_output=4096)
        except GenjsccError:
            outcomes["refused"] += 1
            continue
        if result.ok:
            assert result.data == text
        outcomes["whole" if result.ok else "lost"] += 1
    assert outcomes["lost"] and outcomes["refused"], outcomes
