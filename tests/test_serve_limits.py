"""genjscc serve against one greedy or hostile client: a per-request work cap (`too_large`
before any work), slices served in turn between clients, a per-worker budget of LM session
rows (`busy`), workers that must prove the worker secret, a loopback worker endpoint by
default, and protocol versions that are ints. Real server processes on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import zmq

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from genjscc.serve import protocol as P
from genjscc.serve.client import ServerError, connect
from genjscc.serve.registry import LM_MAX_ROWS, LM_MAX_SESSION_ROWS
from serve_helpers import ServerProcess, free_port

MODELS = "ecct-polar_n64_k32,bp:LDPC_N49_K24"


@pytest.mark.parametrize("version", ["true", "1.0", '"1"', "null"])
def test_the_protocol_version_must_be_the_integer_1(version: str) -> None:
    frame = f'{{"v": {version}, "op": "health", "id": 1}}'.encode()
    with pytest.raises(P.ProtocolError) as info:
        P.parse_request([frame])
    assert info.value.code == "unsupported_version"
    assert P.parse_request([b'{"v": 1, "op": "health", "id": 1}'])["v"] == 1


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--models", MODELS, "--workers", "1", "--max-batch", "16") as proc:
        yield proc


def raw_request(endpoint: str, header: dict, arrays=(), timeout_s: float = 10.0):
    """One request on a fresh DEALER socket: (reply header, seconds it took)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        start = time.monotonic()
        sock.send_multipart(P.encode({"v": 1, "id": 1, **header}, arrays))
        assert sock.poll(int(timeout_s * 1000)), f"no reply within {timeout_s} s"
        head, _ = P.parse_reply(sock.recv_multipart())
        return head, time.monotonic() - start
    finally:
        sock.close(0)


def test_a_request_over_the_work_cap_is_refused_before_any_work(server) -> None:
    llr = np.zeros((60_000, 64), "<f4")  # 15 MB: within the frame limits, minutes of work
    head, took = raw_request(server.endpoint, {"op": "decode", "model": "ecct-polar_n64_k32"},
                             [llr])
    assert not head["ok"] and head["error"]["code"] == "too_large", head
    assert "rows at a time" in head["error"]["message"] and took < 5.0
    with connect(server.endpoint, timeout_s=30.0) as client:  # the worker is free at once
        assert client.health()["status"] == "ok"
        bits = client.decoder("ecct", get_code("POLAR_N64_K32"))(np.full((2, 64), 5.0, "f4"))
        assert bits.shape == (2, 64) and not bits.any()


def test_a_sliced_request_gives_the_unsliced_answer(server) -> None:
    code = get_code("LDPC_N49_K24")
    rng = np.random.default_rng(3)
    llr = (4.0 + 2.0 * rng.standard_normal((4000, 49))).astype("<f4")  # ~1 s of work: sliced
    with connect(server.endpoint, timeout_s=60.0) as client:
        before = client.stats()["models"]["bp:LDPC_N49_K24"]["batches"]
        res = client.decoder("bp", code, 50).decode(llr)
        after = client.stats()["models"]["bp:LDPC_N49_K24"]
    local = make_decoder("bp", code, num_iters=50).decode(
        __import__("torch").from_numpy(llr))
    assert np.array_equal(np.asarray(res.bits), local.bits.numpy())
    assert np.array_equal(np.asarray(res.num_iters), local.num_iters.numpy())
    assert after["batches"] - before >= 3 and after["requests"] >= 1


def test_one_client_s_big_request_does_not_hold_up_another(server) -> None:
    """A decode of ~2500 ECCT rows (seconds of work) and, just after it, one small BP decode
    from another client: the small one is answered after at most a slice or two."""
    big = np.zeros((2500, 64), "<f4")
    done: dict[str, float] = {}

    def greedy() -> None:
        head, took = raw_request(server.endpoint, {"op": "decode",
                                                   "model": "ecct-polar_n64_k32"}, [big],
                                 timeout_s=120.0)
        assert head["ok"], head
        done["big"] = took

    thread = threading.Thread(target=greedy)
    thread.start()
    time.sleep(0.3)  # the big request is being decoded
    head, took = raw_request(server.endpoint, {"op": "decode", "model": "bp:LDPC_N49_K24"},
                             [np.full((1, 49), 3.0, "<f4")])
    small_done = time.monotonic()
    thread.join(timeout=120)
    assert head["ok"] and took < 2.0, (head, took)
    assert "big" in done and done["big"] > took
    assert time.monotonic() - small_done > 0.2 or done["big"] > 1.0


def test_lm_sessions_are_held_to_a_budget_of_rows() -> None:
    sessions = LM_MAX_SESSION_ROWS // LM_MAX_ROWS
    with ServerProcess("--models", "lm-small", "--workers", "1") as proc, \
            connect(proc.endpoint, timeout_s=60.0) as client:
        model = client.lm("small")
        states = [model.start_state(LM_MAX_ROWS) for _ in range(sessions)]
        with pytest.raises(ServerError) as info:
            model.start_state(LM_MAX_ROWS)
        assert info.value.code == "busy" and "budget" in str(info.value)
        del states[0]  # lm_end frees its rows
        time.sleep(0.5)
        states.append(model.start_state(LM_MAX_ROWS))


def worker_hello_ready(endpoint: str, proof: str | None) -> dict:
    """A process that claims to be a worker serving a valid-looking model: the broker's last
    answer to its ``ready`` (or {} when it says nothing)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTING_ID, b"w-rogue0123456789")
    sock.connect(endpoint)
    try:
        sock.send_multipart([P.WORKER_MAGIC, json.dumps({"type": "hello"}).encode()])
        assert sock.poll(10_000)
        config = json.loads(sock.recv_multipart()[1])
        desc = {"name": "bp:LDPC_N49_K24", "kind": "bp", "sha256": "0" * 64, "device": "cpu",
                "info": {}, "ops": {"decode": {"merge": True, "session": None}}}
        ready = {"type": "ready", "worker": "w-rogue0123456789", "models": [desc]}
        if proof is not None:
            ready["proof"] = proof
        sock.send_multipart([P.WORKER_MAGIC, json.dumps(ready).encode()])
        answer = json.loads(sock.recv_multipart()[1]) if sock.poll(3000) else {}
        return {"config": config, "answer": answer}
    finally:
        sock.close(0)


def test_a_worker_without_the_secret_is_refused(server) -> None:
    for proof in (None, "0" * 64):
        got = worker_hello_ready(server.worker_endpoint, proof)
        assert got["answer"].get("type") == "stop" and "secret" in got["answer"]["reason"]
    with connect(server.endpoint, timeout_s=20.0) as client:
        workers = client.stats()["workers"]
    assert len(workers) == 1 and all(w["host"] != "" for w in workers)
    assert not any("rogue" in w["id"] for w in workers)


def test_the_worker_endpoint_is_loopback_and_the_warning_names_both(tmp_path) -> None:
    port = free_port()
    proc = ServerProcess("--models", "bp:LDPC_N49_K24", "--workers", "1", port=port)
    proc.args = ["--bind", f"tcp://0.0.0.0:{port}", "--models", "bp:LDPC_N49_K24",
                 "--workers", "1"]
    with proc:
        assert proc.worker_endpoint == f"tcp://127.0.0.1:{port + 1}"
        warning = "".join(line for line in proc.lines if "WARNING" in line)
        assert f"tcp://0.0.0.0:{port}" in warning and f"tcp://127.0.0.1:{port + 1}" in warning


def test_a_remote_worker_with_the_secret_joins(tmp_path) -> None:
    secret = tmp_path / "worker.secret"
    secret.write_text("a shared secret of more than 16 bytes\n")
    broker = ServerProcess("--models", "bp:LDPC_N49_K24", "--workers", "0",
                           "--worker-secret", str(secret)).start()
    try:
        bad = tmp_path / "other.secret"
        bad.write_text("another secret of more than 16 bytes\n")
        refused = ServerProcess("--connect", broker.worker_endpoint, "--worker-secret",
                                str(bad), worker=True).start()
        assert refused.proc.wait(timeout=120) == 2
        assert any("secret" in line for line in refused.lines)
        worker = ServerProcess("--connect", broker.worker_endpoint, "--worker-secret",
                               str(secret), worker=True).start()
        try:
            with connect(broker.endpoint, timeout_s=60.0) as client:
                deadline = time.monotonic() + 120
                while client.health()["workers"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.2)
                bits = client.decoder("bp", get_code("LDPC_N49_K24"), 10)(
                    np.full((1, 49), 4.0, "f4"))
                assert not bits.any()
        finally:
            worker.stop()
    finally:
        broker.stop()


def test_ber_says_why_it_waits_for_a_silent_server() -> None:
    """A server that takes requests and never answers: `genjscc ber --backend` says it is
    waiting (and for how long) instead of printing nothing for the client's 30 s timeout."""
    import subprocess
    import sys

    port = free_port()
    silent = zmq.Context.instance().socket(zmq.ROUTER)
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind(f"tcp://127.0.0.1:{port}")
    proc = subprocess.Popen([sys.executable, "-m", "genjscc.cli", "ber", "--code",
                             "LDPC_N49_K24", "--decoder", "bp", "--ebno", "3",
                             "--backend", f"tcp://127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("waiting for the genjscc server" in x for x in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            time.sleep(0.1)
        assert silent.poll(0)  # its request did arrive
    finally:
        proc.kill()
        proc.wait()
        silent.close(0)
    line = next(x for x in lines if "waiting for the genjscc server" in x)
    assert f"tcp://127.0.0.1:{port}" in line and "attempt 1 of 3" in line


def test_a_huge_iteration_count_is_too_large_not_a_crash(server) -> None:
    llr = np.full((4, 49), 3.0, "<f4")
    head, _ = raw_request(server.endpoint, {"op": "decode", "model": "bp:LDPC_N49_K24",
                                            "params": {"num_iters": 10 ** 400}}, [llr])
    assert not head["ok"] and head["error"]["code"] == "too_large", head
