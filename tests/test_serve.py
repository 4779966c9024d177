"""genjscc serve for real: a server process on 127.0.0.1 (two workers), clients over TCP.

Results through the server equal local results for the same inputs: bit for bit for LM
probabilities (same step code, rows and threads), and the same bits and iterations for ECCT
and BP. Malformed traffic gets error replies and the server keeps serving; weights that differ
are refused; a dead server is one clear line from the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pmt
import pytest
import torch
import zmq

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.source.codec import compress, decompress, load_model
from genjscc.core.source.lm import coding_threads
from genjscc.serve import protocol as P
from genjscc.serve.client import (
    Client,
    InvalidInput,
    ServerError,
    ServerUnavailable,
    WeightsMismatch,
    connect,
)
from serve_helpers import ROOT, ServerProcess, free_port

MODELS = "ecct-polar_n64_k32,lm-small,bp:LDPC_N49_K24"
TEXT = (ROOT / "README.md").read_bytes()[:3000]


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--models", MODELS, "--workers", "2", "--max-batch", "16",
                       "--max-delay-ms", "3") as proc:
        yield proc


@pytest.fixture()
def client(server):
    with connect(server.endpoint, timeout_s=20.0) as c:
        yield c


def bpsk_llr(n: int, words: int, ebno_db: float, rate: float, seed: int) -> torch.Tensor:
    """LLRs of the all-zero word (BPSK +1) over AWGN: enough to compare decoders."""
    gen = torch.Generator().manual_seed(seed)
    noise_var = 1.0 / (2.0 * rate * 10 ** (ebno_db / 10))
    y = 1.0 + noise_var ** 0.5 * torch.randn(words, n, generator=gen)
    return (2.0 * y / noise_var).clamp(-20, 20)


def test_health_models_and_stats(client):
    health = client.health()
    assert health["status"] == "ok" and health["workers"] == 2 and health["protocol"] == 1
    models = {m["name"]: m for m in client.models()}
    assert set(models) == set(MODELS.split(","))
    from genjscc.zoo import get_model

    assert models["ecct-polar_n64_k32"]["sha256"] == get_model("ecct-polar_n64_k32").sha256
    assert models["lm-small"]["sha256"] == get_model("lm-small").sha256
    assert models["ecct-polar_n64_k32"]["workers"] == 2
    assert models["bp:LDPC_N49_K24"]["info"]["n"] == 49
    stats = client.stats()
    assert {"requests", "errors", "models", "workers"} <= set(stats)
    assert len(stats["workers"]) == 2


def test_ecct_through_the_server_equals_local(client):
    code = get_code("POLAR_N64_K32")
    llr = bpsk_llr(64, 300, 3.0, 0.5, seed=1)
    remote, local = client.decoder("ecct", code), make_decoder("ecct", code)
    assert torch.equal(remote(llr), local(llr))
    assert torch.equal(remote(llr[:1]), local(llr[:1]))
    # numpy in, numpy out, leading dimensions kept
    out = remote(llr.numpy().reshape(3, 100, 64))
    assert isinstance(out, np.ndarray) and out.shape == (3, 100, 64)
    with pytest.raises(InvalidInput, match="NaN"):
        remote(torch.full((2, 64), float("nan")))


def test_concurrent_clients_are_batched_and_get_their_own_results(server):
    code = get_code("POLAR_N64_K32")
    local = make_decoder("ecct", code)
    words = [bpsk_llr(64, 1, 3.0, 0.5, seed=100 + i) for i in range(8 * 12)]
    results: dict[int, torch.Tensor] = {}
    errors: list[Exception] = []

    def run(worker: int) -> None:
        try:
            with connect(server.endpoint, timeout_s=20.0) as c:
                dec = c.decoder("ecct", code)
                for i in range(worker, len(words), 8):
                    results[i] = dec(words[i])
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == len(words)  # no lost reply
    for i, word in enumerate(words):  # decided bits are the local ones (GEMM rows differ by
        assert torch.equal(results[i], local(word)), i  # ~1e-7 at most: no bit flips here)
    with connect(server.endpoint) as c:
        sizes = c.stats()["models"]["ecct-polar_n64_k32"]["batch_sizes"]
    assert max(int(k) for k in sizes) > 1, sizes  # requests were merged


def test_bp_through_the_server_equals_local(client):
    code = get_code("LDPC_N49_K24")
    llr = bpsk_llr(49, 400, 2.5, 24 / 49, seed=3)
    for name, iters, options in (("bp", 20, {}), ("normalized-minsum-layered", 10,
                                                   {"scaling": 0.8})):
        remote = client.decoder(name, code, iters, **options).decode(llr)
        local = make_decoder(name, code, iters, **options).decode(llr)
        assert torch.equal(remote.bits, local.bits)
        assert torch.equal(remote.num_iters, local.num_iters)
        assert torch.equal(remote.syndrome_ok, local.syndrome_ok)
    with pytest.raises(InvalidInput, match="decoder"):
        client.decoder("no-such", code)(llr[:2])
    with pytest.raises(ServerError, match="no bp model"):
        client.decoder("bp", get_code("POLAR_N64_K32"))(torch.zeros(1, 64))


@pytest.mark.parametrize(("rows", "threads"), [(1, 1), (5, 1), (8, 2)])
def test_lm_probabilities_are_bit_identical(client, rows, threads):
    local, remote = load_model("small"), client.lm("small")
    assert remote.weights_sha256 == local.weights_sha256
    rng = np.random.default_rng(rows)
    with coding_threads(threads), torch.inference_mode():
        s_local, s_remote = local.start_state(rows), remote.start_state(rows)
        tokens = torch.full((rows,), local.bos_id, dtype=torch.int64)
        for _ in range(40):
            s_local, p_local = local.step(s_local, tokens)
            s_remote, p_remote = remote.step(s_remote, tokens)
            assert p_remote.dtype == torch.int64 and torch.equal(p_local, p_remote)
            tokens = torch.from_numpy(rng.integers(0, 256, rows))


def test_lm_steps_of_many_sessions_merge_and_stay_bit_identical(server):
    """Eight sessions step at once through two workers: a worker merges the steps queued
    together (lm-small is integer: merging changes nothing by construction), and every
    session's frequency tables equal the local model stepping that session alone."""
    local = load_model("small")
    sizes = [1, 1, 5, 32, 1, 3, 48, 1]
    barrier = threading.Barrier(len(sizes))
    merged_counts: list[list[int]] = [[] for _ in sizes]
    errors: list[str] = []

    def session(k: int, rows: int) -> None:
        rng = np.random.default_rng(k)
        with Client(server.endpoint, timeout_s=30.0) as c:
            sid = c.request("lm_start", "lm-small", params={
                "rows": rows, "threads": 1}).result["session"]
            with coding_threads(1), torch.inference_mode():
                state = local.start_state(rows)
                tokens = np.full(rows, local.bos_id, dtype="<i8")
                barrier.wait()
                for t in range(30):
                    reply = c.request("lm_step", "lm-small", [tokens], {"session": sid, "t": t})
                    state, probs = local.step(state, torch.from_numpy(tokens))
                    if not np.array_equal(reply.arrays[0], probs.numpy()):
                        errors.append(f"session {k} ({rows} rows) differs at step {t}")
                        return
                    merged_counts[k].append(reply.result.get("merged", 1))  # a retry: cached
                    tokens = rng.integers(0, 256, rows).astype("<i8")
            c.request("lm_end", "lm-small", params={"session": sid})

    threads = [threading.Thread(target=session, args=(k, r)) for k, r in enumerate(sizes)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors, errors
    assert all(len(m) == 30 for m in merged_counts)
    # two workers, eight sessions started together: some steps land in one call
    assert max(max(c) for c in merged_counts) > 1


def test_compress_through_the_server_is_the_local_container(client):
    local, remote = load_model("small"), client.lm("small")
    blob = compress(TEXT, local, chunk_size=700, batch=3)
    assert compress(TEXT, remote, chunk_size=700, batch=3) == blob
    result = decompress(blob, remote)
    assert result.ok and result.data == TEXT


def test_lm_session_errors(client):
    remote = client.lm("small")
    state = remote.start_state(2)
    tokens = torch.zeros(2, dtype=torch.int64)
    state, first = remote.step(state, tokens)
    # a retried step (same t) gets the same answer; a skipped one is refused
    again = client.request("lm_step", "lm-small", [tokens.numpy()],
                           {"session": state.session.sid, "t": 0})
    assert np.array_equal(again.arrays[0], first.numpy())
    with pytest.raises(ServerError, match="out_of_order"):
        client.request("lm_step", "lm-small", [tokens.numpy()],
                       {"session": state.session.sid, "t": 5})
    with pytest.raises(ServerError, match="unknown_session"):
        client.request("lm_step", "lm-small", [tokens.numpy()], {"session": "nope", "t": 0})
    with pytest.raises(InvalidInput, match="rows"):
        client.request("lm_start", "lm-small", params={"rows": 0})
    with pytest.raises(InvalidInput, match="row_block"):
        client.request("lm_start", "lm-small", params={"rows": 2, "row_block": 3})


def test_golden_container_decodes_through_the_server(client):
    """A container committed to tests/data (made on another machine) decodes exactly
    through the server too: the integer arithmetic is the same everywhere."""
    golden = ROOT / "tests" / "data" / "golden-text.gjz"
    result = decompress(golden.read_bytes(), client.lm("small"))
    assert result.ok and result.data == golden.with_suffix(".txt").read_bytes()


def test_weights_mismatch_is_refused(client):
    code = get_code("POLAR_N64_K32")
    with pytest.raises(WeightsMismatch, match="identical weights"):
        client.lm("small", expected_sha256="0" * 64)
    dec = client.decoder("ecct", code)
    dec.expected_sha256 = "1" * 64
    with pytest.raises(WeightsMismatch):
        dec(torch.zeros(1, 64))
    with pytest.raises(WeightsMismatch, match="sha256"):
        client.request("decode", "ecct-polar_n64_k32", [np.zeros((1, 64), np.float32)],
                       sha256="2" * 64)


def test_unknown_model_and_op(client):
    with pytest.raises(ServerError, match="unknown_model"):
        client.request("decode", "no-such-model", [np.zeros((1, 4), np.float32)])
    with pytest.raises(ServerError, match="unknown_op"):
        client.request("encode", "ecct-polar_n64_k32")


def _fuzz_messages(rng: np.random.Generator, valid: list[bytes], count: int) -> list[list[bytes]]:
    def rand_bytes(low: int, high: int) -> bytes:
        return rng.integers(0, 256, int(rng.integers(low, high)), dtype=np.uint8).tobytes()

    head = json.loads(valid[0])
    messages = []
    for i in range(count):
        kind = i % 10
        if kind < 3:  # random frames
            messages.append([rand_bytes(0, 300) for _ in range(int(rng.integers(1, 6)))])
        elif kind == 3:  # random JSON
            obj = {rand_bytes(1, 6).hex(): int(rng.integers(-9, 9)) for _ in range(3)}
            messages.append([json.dumps(obj).encode(), rand_bytes(0, 50)])
        elif kind == 4:  # valid header, bytes flipped
            h = bytearray(valid[0])
            for pos in rng.integers(0, len(h), 3):
                h[pos] = int(rng.integers(0, 256))
            messages.append([bytes(h), valid[1][: int(rng.integers(0, 300))]])
        elif kind == 5:  # wrong shapes, dtypes and sizes
            bad = dict(head)
            bad["arrays"] = [{"dtype": str(rng.choice(["<f4", "<f8", "O", "<u1", "bad"])),
                              "shape": [int(rng.integers(-2, 5)), 64]}]
            messages.append([json.dumps(bad).encode(), valid[1][:-4]])
        elif kind == 6:  # wrong version, op, model or params types
            bad = dict(head)
            field = str(rng.choice(["v", "op", "model", "params", "id", "timeout_ms"]))
            bad[field] = [None, 2, "x" * 300, [], {}, -1][int(rng.integers(0, 6))]
            messages.append([json.dumps(bad).encode(), *valid[1:]])
        elif kind == 7:  # a valid-looking request for a model or op that does not exist
            bad = dict(head, model=rand_bytes(2, 8).hex())
            messages.append([json.dumps(bad).encode(), *valid[1:]])
        elif kind == 8:  # too many frames, or the REQ envelope with junk
            messages.append([b""] * int(rng.integers(18, 25)) if i % 20 == 8
                            else [b"", rand_bytes(0, 40)])
        else:  # an oversized header, now and then
            messages.append([b" " * (P.DEFAULT_LIMITS.max_header_bytes + 1)] if i % 200 == 9
                            else [b"{" * int(rng.integers(1, 5000))])
    return messages


def test_ten_thousand_malformed_messages_then_a_valid_request(server, client):
    code = get_code("POLAR_N64_K32")
    llr = bpsk_llr(64, 4, 3.0, 0.5, seed=9).numpy()
    valid = [bytes(f) for f in P.encode({"v": 1, "op": "decode", "id": "x",
                                         "model": "ecct-polar_n64_k32"}, [llr])]
    messages = _fuzz_messages(np.random.default_rng(0), valid, 10_000)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    replies, errors = 0, 0
    try:
        for start in range(0, len(messages), 500):
            chunk = messages[start:start + 500]
            for frames in chunk:
                sock.send_multipart(frames)
            for _ in chunk:
                assert sock.poll(20_000), f"no reply after {replies} replies"
                reply = sock.recv_multipart()
                if reply and reply[0] == b"":
                    reply = reply[1:]
                header, _ = P.parse_reply(reply)
                replies += 1
                errors += not header["ok"]
    finally:
        sock.close(0)
    assert replies == len(messages)
    assert errors >= 0.95 * len(messages)
    # random traffic on the worker port is ignored too
    wsock = ctx.socket(zmq.DEALER)
    wsock.setsockopt(zmq.LINGER, 0)
    wsock.connect(server.worker_endpoint)
    rng = np.random.default_rng(1)
    for i in range(1000):
        junk = [P.WORKER_MAGIC, json.dumps({"type": ["ready", "done", "heartbeat", "hello",
                                                     "fatal"][i % 5],
                                            "models": [{"name": "x"}], "items": [{"tag": "a"}],
                                            "task": "t", "worker": 5}).encode()]
        wsock.send_multipart(junk if i % 2 else [rng.bytes(int(rng.integers(1, 50)))])
    wsock.close(0)
    assert client.health()["status"] == "ok"
    local = make_decoder("ecct", code)
    assert torch.equal(torch.from_numpy(client.decoder("ecct", code)(llr)),
                       local(torch.from_numpy(llr)))


def test_ldpc_decoder_block_with_a_server_backend(server):
    from genjscc.blocks.ldpc import ldpc_decoder, ldpc_encoder

    enc = ldpc_encoder(code="LDPC_N49_K24", crc="", input_format="unpacked")
    payload = np.random.default_rng(2).integers(0, 2, 3 * 24).astype(np.uint8)
    coded = pmt.to_python(pmt.cdr(enc.process(pmt.cons(pmt.make_dict(),
                                                       pmt.to_pmt(payload)))))
    llr = (8.0 * (1.0 - 2.0 * coded.astype(np.float32))).astype(np.float32)
    llr[::7] *= -0.2  # a few wrong, weak LLRs for BP to fix
    pdu = pmt.cons(pmt.make_dict(), pmt.to_pmt(llr))
    remote = ldpc_decoder(code="LDPC_N49_K24", crc="", output_format="unpacked",
                          backend=server.endpoint, num_iters=20)
    local = ldpc_decoder(code="LDPC_N49_K24", crc="", output_format="unpacked", num_iters=20)
    out_r, out_l = remote.process(pdu), local.process(pdu)
    assert np.array_equal(pmt.to_python(pmt.cdr(out_r)), pmt.to_python(pmt.cdr(out_l)))
    assert np.array_equal(pmt.to_python(pmt.cdr(out_r)), payload)
    meta = pmt.car(out_r)
    assert pmt.to_bool(pmt.dict_ref(meta, pmt.intern("backend_ok"), pmt.PMT_F))
    assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("iterations"), pmt.PMT_NIL)) == \
        pmt.to_long(pmt.dict_ref(pmt.car(out_l), pmt.intern("iterations"), pmt.PMT_NIL))
    assert remote.num_backend_failures() == 0


def genjscc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genjscc.cli", *args], capture_output=True,
                          text=True, timeout=180, cwd=ROOT)


def test_cli_uses_the_server(server, tmp_path):
    out = genjscc("ber", "--code", "LDPC_N49_K24", "--decoder", "bp", "--iters", "10",
                  "--ebno", "3", "--max-words", "400", "--min-errors", "10000", "--json",
                  "--backend", server.endpoint, "--no-progress")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["words"] == 400
    src, gjz, back = tmp_path / "a.txt", tmp_path / "a.gjz", tmp_path / "b.txt"
    src.write_bytes(TEXT)
    assert genjscc("compress", str(src), str(gjz), "-q", "--chunk", "1000",
                   "--backend", server.endpoint).returncode == 0
    assert gjz.read_bytes() == compress(TEXT, load_model("small"), chunk_size=1000)
    done = genjscc("decompress", str(gjz), str(back), "--backend", server.endpoint, "-q")
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == TEXT


def test_dead_server_is_one_line_and_exit_2(tmp_path):
    dead = f"tcp://127.0.0.1:{free_port()}"
    out = genjscc("ber", "--code", "POLAR_N64_K32", "--decoder", "ecct", "--ebno", "4",
                  "--backend", dead)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "cannot connect to the genjscc server" in lines[0] and dead in lines[0]
    with pytest.raises(ServerUnavailable):  # and the library says so, fast, while it is down
        Client(dead, timeout_s=0.5, connect_timeout_s=0.3).health()


def test_remote_model_needs_the_server_to_serve_it(client):
    with pytest.raises(ServerError, match="serves no lm model"):
        client.lm("smollm2")


def test_a_worker_killed_under_load_loses_no_reply(server):
    """Last in this module: it kills one of the two workers (the server restarts it)."""
    import os
    import signal
    import time

    code = get_code("POLAR_N64_K32")
    local = make_decoder("ecct", code)
    words = [bpsk_llr(64, 3, 3.0, 0.5, seed=500 + i) for i in range(6)]
    expected = [local(w) for w in words]
    with connect(server.endpoint) as c:
        victim = next(w["pid"] for w in c.stats()["workers"])
    stop = threading.Event()
    counts, errors = [0] * 6, []

    def run(k: int) -> None:
        try:
            with connect(server.endpoint, timeout_s=30.0, retries=0) as c:
                dec = c.decoder("ecct", code)
                while not stop.is_set():
                    assert torch.equal(dec(words[k]), expected[k])
                    counts[k] += 1
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    before = sum(counts)
    time.sleep(3.0)  # the broker sees the worker exit (or 2 s of silence) and resends its work
    stop.set()
    for t in threads:
        t.join(40)
    assert not errors, errors
    assert sum(counts) > before  # requests kept being answered after the kill
    assert any("restarting it" in line for line in server.lines)
