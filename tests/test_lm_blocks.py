"""lm_source_encoder / lm_source_decoder in real flowgraphs: round trips, metadata, malformed
PDUs and corrupt containers (the graph keeps running and every failure is marked and counted).

PDUs are posted straight into the first block and collected with blocks.message_debug; every
graph is stopped by the test after a bounded wait.
"""

from __future__ import annotations

import numpy as np
import pmt
import pytest
import torch

from flowgraph_helpers import meta_ref, run_chain
from genjscc.core.source import compress, load_model, parse_container
from genjscc.core.source.container import ENTRY_SIZE, placeholder
from genjscc.core.source.small import SmallByteLM, SmallLMConfig, save_small_lm
from gnuradio import genjscc

pytestmark = pytest.mark.flowgraph

TEXT = (b"The quick brown fox jumps over the lazy dog; the decoder must see the very same "
        b"probabilities as the encoder did. ") * 3
BINARY = np.random.default_rng(5).integers(0, 256, 700, dtype=np.uint8).tobytes()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def u8_pdu(data: bytes, meta=None) -> pmt.pmt_base:
    return pmt.cons(meta if meta is not None else pmt.make_dict(),
                    pmt.to_pmt(np.frombuffer(data, dtype=np.uint8).copy()))


def data_of(msg) -> bytes:
    return np.asarray(pmt.to_python(pmt.cdr(msg)), dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def small():
    return load_model("small")


def test_round_trip_through_encoder_and_decoder(small):
    sent = [TEXT, BINARY, b"x", b"\xff\xfe invalid \xc3 utf-8"]
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(7))
    enc = genjscc.lm_source_encoder("small", chunk_size=100, batch=4)
    dec = genjscc.lm_source_decoder()
    tb_msgs = [u8_pdu(d, meta) for d in sent]
    got = run_chain([enc, dec], tb_msgs, len(sent))
    assert [data_of(m) for m in got] == sent
    for msg, data in zip(got, sent, strict=True):
        n = -(-len(data) // 100)
        assert pmt.to_bool(meta_ref(msg, "lm_ok")) is True
        assert pmt.symbol_to_string(meta_ref(msg, "lm_model")) == "lm-small"
        assert pmt.to_long(meta_ref(msg, "lm_n_chunks")) == n
        assert pmt.to_long(meta_ref(msg, "seq")) == 7  # the input's metadata is kept
        assert not pmt.dict_has_key(pmt.car(msg), pmt.intern("lm_error"))
    assert enc.num_processed() == dec.num_processed() == len(sent)
    assert enc.num_errors() == dec.num_errors() == dec.num_corrupt() == 0
    assert enc.num_bytes_in() == sum(len(d) for d in sent)


def test_encoder_metadata_describes_the_container(small):
    enc = genjscc.lm_source_encoder("small", chunk_size=128)
    (msg,) = run_chain([enc], [u8_pdu(TEXT)], 1)
    blob = data_of(msg)
    parsed = parse_container(blob)
    n = parsed.header.n_chunks
    assert n == -(-len(TEXT) // 128) and parsed.header.rows == n  # batch 0: model default
    assert list(pmt.to_python(meta_ref(msg, "lm_chunk_ids"))) == list(range(n))
    assert list(pmt.to_python(meta_ref(msg, "lm_chunk_lengths"))) == \
        [e.original_length for e in parsed.entries]
    assert list(pmt.to_python(meta_ref(msg, "lm_payload_lengths"))) == \
        [len(p) for p in parsed.payloads]
    assert pmt.to_long(meta_ref(msg, "lm_original_length")) == len(TEXT)
    assert pmt.to_long(meta_ref(msg, "lm_compressed_length")) == len(blob)
    bpb = pmt.to_double(meta_ref(msg, "lm_bits_per_byte"))
    assert bpb == pytest.approx(8 * len(blob) / len(TEXT))
    # English through a trained model: the payloads cost far less than 8 bits per byte
    assert 8 * sum(len(p) for p in parsed.payloads) / len(TEXT) < 4.0
    assert enc.num_bytes_out() == len(blob)
    # the block writes what the library writes: genjscc decompress reads it
    assert blob == compress(TEXT, small, chunk_size=128, keep_chunks=True)


def test_malformed_pdus_are_counted_and_the_graph_keeps_running():
    enc = genjscc.lm_source_encoder("small", chunk_size=64)
    dec = genjscc.lm_source_decoder()
    bad = [
        pmt.intern("not a pdu"),
        pmt.cons(pmt.make_dict(), pmt.init_f32vector(3, [1.0, 2.0, 3.0])),
        pmt.cons(pmt.make_dict(), pmt.init_u8vector(0, [])),
        pmt.cons(pmt.from_long(3), pmt.init_u8vector(2, [1, 2])),
        pmt.cons(pmt.make_dict(), pmt.list2(pmt.from_long(1), pmt.from_long(2))),
    ]
    got = run_chain([enc, dec], [bad[0], u8_pdu(b"first"), *bad[1:], u8_pdu(b"second")], 2)
    assert [data_of(m) for m in got] == [b"first", b"second"]
    assert enc.num_errors() == len(bad) and enc.num_processed() == 2
    got = run_chain([dec], [*bad, u8_pdu(compress(b"third", load_model("small")))], 1)
    assert [data_of(m) for m in got] == [b"third"]
    assert dec.num_errors() == len(bad)


def corrupt_containers(small) -> tuple[bytes, list[tuple[str, bytes]]]:
    blob = compress(TEXT, small, chunk_size=100, keep_chunks=True)
    parsed = parse_container(blob)
    header_length = int.from_bytes(blob[10:12], "little")
    payload_flip = bytearray(blob)
    payload_flip[parsed.entries[1].offset + 2] ^= 0x40
    header_flip = bytearray(blob)
    header_flip[20] ^= 0x01  # chunk size field
    table_flip = bytearray(blob)
    table_flip[header_length + ENTRY_SIZE * 2 + 5] ^= 0x08  # entry of chunk 2
    return blob, [
        ("not_container", b"plain text, not a container" * 3),
        ("not_container", blob[:20]),
        ("header_corrupt", bytes(header_flip)),
        ("header_corrupt", blob[:header_length + 40]),  # truncated in the chunk table
        ("chunks_lost", bytes(payload_flip)),
        ("chunks_lost", bytes(table_flip)),
        ("chunks_lost", blob[:-5]),  # the last payload truncated
    ]


def test_corrupt_containers_are_marked_counted_and_partly_recovered(small):
    blob, cases = corrupt_containers(small)
    dec = genjscc.lm_source_decoder(placeholder=False)
    msgs = [u8_pdu(raw) for _, raw in cases] + [u8_pdu(blob)]
    got = run_chain([dec], msgs, len(msgs))
    assert len(got) == len(msgs)
    chunks = [TEXT[i:i + 100] for i in range(0, len(TEXT), 100)]
    for (code, _), msg in zip(cases, got, strict=False):
        assert pmt.to_bool(meta_ref(msg, "lm_ok")) is False
        assert pmt.symbol_to_string(meta_ref(msg, "lm_error")) == code
        if code != "chunks_lost":
            assert data_of(msg) == b""
            continue
        lost = list(pmt.to_python(meta_ref(msg, "lm_lost_chunks")))
        assert lost and pmt.to_long(meta_ref(msg, "lm_n_chunks")) == len(chunks)
        assert data_of(msg) == b"".join(c for i, c in enumerate(chunks) if i not in lost)
    lost_sets = [list(pmt.to_python(meta_ref(m, "lm_lost_chunks"))) for m in got[4:7]]
    assert lost_sets == [[1], [2], [len(chunks) - 1]]
    assert data_of(got[-1]) == TEXT and pmt.to_bool(meta_ref(got[-1], "lm_ok"))
    assert dec.num_corrupt() == len(cases) and dec.num_chunks_lost() == 3
    assert dec.num_errors() == 0 and dec.num_processed() == len(msgs)


def test_placeholder_keeps_offsets(small):
    _, cases = corrupt_containers(small)
    dec = genjscc.lm_source_decoder("small", placeholder=True)
    (msg,) = run_chain([dec], [u8_pdu(cases[4][1])], 1)  # payload of chunk 1 flipped
    data = data_of(msg)
    assert len(data) == len(TEXT)
    assert data[100:200] == placeholder(1, 100) and data[:100] == TEXT[:100]
    assert data[200:] == TEXT[200:]


def test_other_weights_are_refused_with_a_code(small, tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "other.safetensors"
    save_small_lm(SmallByteLM(SmallLMConfig(hidden=16, embed=8)), path)
    other = load_model(str(path))
    foreign = compress(b"made with other weights", other, chunk_size=64)
    dec_auto = genjscc.lm_source_decoder()  # the container names file:other.safetensors
    dec_small = genjscc.lm_source_decoder("small")
    dec_other = genjscc.lm_source_decoder(str(path))
    small_blob = compress(b"made with lm-small", small)
    (auto,) = run_chain([dec_auto], [u8_pdu(foreign)], 1)
    assert pmt.symbol_to_string(meta_ref(auto, "lm_error")) == "model_unavailable"
    got = run_chain([dec_small], [u8_pdu(foreign), u8_pdu(small_blob)], 2)
    assert pmt.symbol_to_string(meta_ref(got[0], "lm_error")) == "wrong_model"
    assert data_of(got[1]) == b"made with lm-small"
    got = run_chain([dec_other], [u8_pdu(foreign), u8_pdu(small_blob)], 2)
    assert data_of(got[0]) == b"made with other weights"
    assert pmt.symbol_to_string(meta_ref(got[1], "lm_error")) == "wrong_model"
    assert dec_small.num_corrupt() == dec_other.num_corrupt() == dec_auto.num_corrupt() == 1


def test_bad_parameters_fail_at_construction():
    with pytest.raises(ValueError, match="backend"):
        genjscc.lm_source_encoder("small", backend="tcp://127.0.0.1:5555")
    with pytest.raises(ValueError, match="backend"):
        genjscc.lm_source_decoder(backend="ipc://x")
    with pytest.raises(ValueError, match="chunk_size"):
        genjscc.lm_source_encoder("small", chunk_size=0)
    with pytest.raises(ValueError, match="batch"):
        genjscc.lm_source_encoder("small", batch=-1)
    from genjscc.errors import GenjsccError

    with pytest.raises(GenjsccError, match="unknown model"):
        genjscc.lm_source_encoder("no-such-model")


def test_container_above_the_decoding_budget_is_refused_and_the_graph_keeps_running(small):
    dec = genjscc.lm_source_decoder(max_output=len(TEXT) - 1)
    got = run_chain([dec], [u8_pdu(compress(TEXT, small)), u8_pdu(compress(b"short", small))], 2)
    assert pmt.symbol_to_string(meta_ref(got[0], "lm_error")) == "too_large"
    assert data_of(got[0]) == b"" and data_of(got[1]) == b"short"
    assert dec.num_corrupt() == 1
    with pytest.raises(ValueError, match="max_output"):
        genjscc.lm_source_decoder(max_output=0)
