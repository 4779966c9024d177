"""The wire format of genjscc serve without a server: encoding, validation, limits, helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from genjscc.errors import GenjsccError
from genjscc.serve import protocol as P
from genjscc.serve.client import parse_backend
from genjscc.serve.registry import parity_check_sha256, split_spec
from genjscc.serve.server import ServeConfig, default_worker_bind, is_loopback


def request(arrays=(), **fields):
    header = {"v": P.VERSION, "op": "decode", "id": "r1", "model": "m", **fields}
    return P.encode(header, arrays)


@pytest.mark.parametrize("dtype", ["|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8",
                                   "<i8", "<f2", "<f4", "<f8", "<c8", "<c16"])
def test_every_wire_dtype_round_trips(dtype):
    a = (np.arange(24) % 3).astype(dtype).reshape(2, 3, 4)
    frames = [bytes(f) for f in request([a, a[:0]])]
    header = P.parse_request(frames)
    out = P.arrays_of(header, frames[1:])
    assert out[0].dtype == np.dtype(dtype) and np.array_equal(out[0], a)
    assert out[1].shape == (0, 3, 4)


def test_big_endian_and_non_contiguous_arrays_are_sent_little_endian():
    a = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    frames = [bytes(f) for f in request([a])]
    header = json.loads(frames[0])
    assert header["arrays"] == [{"dtype": "<f4", "shape": [3, 2]}]
    assert frames[1] == np.ascontiguousarray(a, dtype="<f4").tobytes()
    with pytest.raises(ValueError, match="cannot travel"):
        P.encode({"v": 1}, [np.array(["text"])])


@pytest.mark.parametrize(("frames", "code", "text"), [
    ([], "bad_request", "empty"),
    ([b"\xff\xfe"], "bad_request", "UTF-8 JSON"),
    ([b"[1, 2]"], "bad_request", "JSON object"),
    ([b'{"v": NaN}'], "bad_request", "not allowed"),
    ([b"[" * 20000 + b"]" * 20000], "bad_request", ""),
    ([b'{"v": 2, "op": "x", "id": 1}'], "unsupported_version", "version 2"),
    ([b'{"v": 1, "id": 1}'], "bad_request", "'op'"),
    ([b'{"v": 1, "op": "x"}'], "bad_request", "'id'"),
    ([b'{"v": 1, "op": "x", "id": true}'], "bad_request", "'id'"),
    ([b'{"v": 1, "op": "x", "id": 1, "params": []}'], "bad_request", "params"),
    ([b'{"v": 1, "op": "x", "id": 1, "timeout_ms": -5}'], "bad_request", "timeout_ms"),
    ([b'{"v": 1, "op": "x", "id": 1, "model": 5}'], "bad_request", "'model'"),
    ([b'{"v": 1, "op": "x", "id": 1, "arrays": [{"dtype": "<f4", "shape": [2]}]}'],
     "bad_request", "1 arrays but 0"),
    ([b'{"v": 1, "op": "x", "id": 1, "arrays": [{"dtype": "O", "shape": [1]}]}', b"x"],
     "bad_request", "dtype"),
    ([b'{"v": 1, "op": "x", "id": 1, "arrays": [{"dtype": "<f4", "shape": [-1]}]}', b"x"],
     "bad_request", "non-negative"),
    ([b'{"v": 1, "op": "x", "id": 1, "arrays": [{"dtype": "<f4", "shape": [1e9]}]}', b"x"],
     "bad_request", "non-negative"),
    ([b'{"v": 1, "op": "x", "id": 1, "arrays": [{"dtype": "<f4", "shape": [3]}]}', b"x" * 8],
     "bad_request", "needs 12 bytes"),
    ([b'{"v": 1, "op": "x", "id": 1, "arrays": [{"dtype": "<f4", "shape": [1], "x": 1}]}',
      b"x" * 4], "bad_request", "arrays[0]"),
    ([b"{}"] * 18, "too_large", "frames"),
    ([b" " * (64 * 1024 + 1)], "too_large", "header"),
])
def test_malformed_requests_are_refused_with_a_code(frames, code, text):
    with pytest.raises(P.ProtocolError) as info:
        P.parse_request(frames)
    assert info.value.code == code
    assert text in str(info.value)


def test_array_and_message_limits():
    limits = P.Limits(max_array_bytes=100, max_message_bytes=250)
    ok = [bytes(f) for f in request([np.zeros(25, np.float32)])]
    P.parse_request(ok, limits)
    with pytest.raises(P.ProtocolError, match="array frame"):
        P.parse_request([bytes(f) for f in request([np.zeros(26, np.float32)])], limits)
    with pytest.raises(P.ProtocolError, match="message of"):
        P.parse_request([bytes(f) for f in request([np.zeros(20, np.float32)] * 2)], limits)


def test_replies_and_request_ids():
    frames = [bytes(f) for f in P.reply_ok(7, {"a": 1}, [np.ones(3, np.uint8)])]
    header, arrays = P.parse_reply(frames)
    assert header["ok"] and header["id"] == 7 and header["result"] == {"a": 1}
    assert arrays[0].tolist() == [1, 1, 1]
    header, arrays = P.parse_reply(P.reply_error("x", "no_such_code", "m" * 5000))
    assert header["error"]["code"] == "internal" and len(header["error"]["message"]) == 2000
    assert P.safe_id(b'{"id": "abc", "v": 9}') == "abc"
    assert P.safe_id(b"garbage") is None and P.safe_id(b'{"id": [1]}') is None
    assert P.canonical_params({"b": 1, "a": 2}) == P.canonical_params({"a": 2, "b": 1})


def test_parity_check_hash_is_the_same_dense_and_sparse():
    h = (np.random.default_rng(0).random((6, 12)) < 0.3).astype(np.uint8)
    assert parity_check_sha256(h) == parity_check_sha256(sp.csr_matrix(h))
    g = h.copy()
    g[0, 0] ^= 1
    assert parity_check_sha256(g) != parity_check_sha256(h)


def test_backend_strings_and_endpoints():
    assert parse_backend("local") is None and parse_backend("") is None
    assert parse_backend("tcp://10.0.0.2:5555") == "tcp://10.0.0.2:5555"
    for bad in ("udp://x:1", "tcp://host", "tcp://:5555", "tcp://h:99999", "5555"):
        with pytest.raises(ValueError, match="backend"):
            parse_backend(bad)
    assert default_worker_bind("tcp://127.0.0.1:5555") == "tcp://127.0.0.1:5556"
    assert default_worker_bind("tcp://0.0.0.0:*") == "tcp://0.0.0.0:*"
    assert is_loopback("tcp://127.0.0.1:5555") and not is_loopback("tcp://0.0.0.0:5555")
    with pytest.raises(GenjsccError, match="--max-batch"):
        ServeConfig(models=["x"], max_batch=0)
    with pytest.raises(GenjsccError, match="--models"):
        ServeConfig(models=[])


def test_model_specs():
    assert split_spec("ecct-polar_n64_k32") == ("ecct", "ecct-polar_n64_k32")
    assert split_spec("bp:5gnr:bg2:k=512:e=1024") == ("bp", "5gnr:bg2:k=512:e=1024")
    assert split_spec("lm-small") == ("lm", "lm-small")
    assert split_spec("smollm2") == ("lm", "smollm2")
    with pytest.raises(GenjsccError, match="unknown model 'nope'"):
        split_spec("nope")
