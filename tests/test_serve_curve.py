"""CurveZMQ: a server with --curve-keys and a worker from "another host" (genjscc serve
--worker --connect) serve authenticated clients and refuse everyone else."""

from __future__ import annotations

import pytest
import torch
import zmq

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from genjscc.errors import GenjsccError
from genjscc.serve import protocol as P
from genjscc.serve.client import Client, ServerUnavailable
from genjscc.serve.security import client_keys, generate_keys
from serve_helpers import ServerProcess


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    good = tmp_path_factory.mktemp("keys")
    generate_keys(good)
    other = tmp_path_factory.mktemp("other-keys")
    generate_keys(other)
    return good, other


@pytest.fixture(scope="module")
def curve_server(keys):
    good, _ = keys
    broker = ServerProcess("--models", "bp:LDPC_N49_K24", "--workers", "0",
                           "--curve-keys", str(good))
    broker.start()  # with --workers 0 it is ready at once; the remote worker joins below
    worker = ServerProcess("--connect", broker.worker_endpoint, "--curve-keys", str(good),
                           worker=True).start()
    try:
        with Client(broker.endpoint, curve_keys=str(good), timeout_s=60.0) as c:
            c.request("decode", "bp:LDPC_N49_K24", [torch.zeros(1, 49).numpy()],
                      {"decoder": "bp", "num_iters": 1})  # waits until the worker is in
        yield broker
    finally:
        worker.stop()
        broker.stop()


def test_authenticated_client_is_served_by_the_remote_worker(curve_server, keys):
    good, _ = keys
    code = get_code("LDPC_N49_K24")
    llr = 4.0 + 2.0 * torch.randn(50, 49, generator=torch.Generator().manual_seed(0))
    with Client(curve_server.endpoint, curve_keys=str(good)) as c:
        health = c.health()
        assert health["status"] == "ok" and health["workers"] == 1
        assert torch.equal(c.decoder("bp", code, 10)(llr), make_decoder("bp", code, 10)(llr))
    assert any("joined" in line for line in curve_server.lines)  # the worker connected itself


def test_unauthenticated_clients_are_refused(curve_server, keys):
    _, other = keys
    for curve_keys in (None, str(other)):  # no keys at all, or keys the server does not know
        with Client(curve_server.endpoint, curve_keys=curve_keys, timeout_s=1.0,
                    connect_timeout_s=1.0) as c, pytest.raises(ServerUnavailable,
                                                               match="cannot connect"):
            c.health()
    # a plain socket that ignores the handshake never gets an answer either
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(curve_server.endpoint)
    sock.send_multipart(P.encode({"v": 1, "op": "health", "id": 1}), zmq.NOBLOCK)  # queued
    assert not sock.poll(1000)
    sock.close(0)


def test_key_files(tmp_path):
    written = generate_keys(tmp_path, "radio1")
    names = sorted(p.name for p in written)
    assert names == ["radio1.key", "radio1.key", "radio1.key_secret", "server.key",
                     "server.key_secret"]
    assert (tmp_path / "server.key_secret").stat().st_mode & 0o077 == 0
    public, secret, server_public = client_keys(tmp_path, "radio1")
    assert len(public) == len(secret) == len(server_public) == 40
    with pytest.raises(GenjsccError, match="exists"):
        generate_keys(tmp_path, "radio1")
    with pytest.raises(GenjsccError, match="missing"):
        client_keys(tmp_path / "nowhere")
