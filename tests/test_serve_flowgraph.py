"""A flowgraph whose ECCT decoders use an inference server that is killed mid-run and started
again: the flowgraph never stops, every PDU still comes out (marked failed, or decoded by the
local fallback, while the server is down), and server decoding resumes within 2 s of the
restarted server being ready."""

from __future__ import annotations

import threading
import time

import numpy as np
import pmt
import pytest
import torch

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from gnuradio import blocks, genjscc, gr
from serve_helpers import ServerProcess, free_port

pytestmark = pytest.mark.flowgraph

IN = pmt.intern("in")
PERIOD_S = 0.04
MODELS = ("--models", "ecct-polar_n64_k32", "--workers", "1")


def meta(msg, key: str):
    return pmt.to_python(pmt.dict_ref(pmt.car(msg), pmt.intern(key), pmt.PMT_NIL))


class Feeder(threading.Thread):
    """Posts PDU ``i % len(pdus)`` to every block each PERIOD_S until stopped."""

    def __init__(self, targets, pdus) -> None:
        super().__init__(daemon=True)
        self.targets, self.pdus = targets, pdus
        self.posted = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(PERIOD_S):
            pdu = self.pdus[self.posted % len(self.pdus)]
            for blk in self.targets:
                blk.to_basic_block()._post(IN, pdu)
            self.posted += 1


class Collector(threading.Thread):
    """Records ``(arrival time, message)`` of every message a message_debug stores."""

    def __init__(self, sink) -> None:
        super().__init__(daemon=True)
        self.sink, self.seen = sink, []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.005):
            while len(self.seen) < self.sink.num_messages():
                self.seen.append((time.monotonic(), self.sink.get_message(len(self.seen))))

    def ok_after(self, t: float) -> list[float]:
        return [when for when, msg in self.seen if when > t and meta(msg, "backend_ok")]


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_server_killed_and_restarted_mid_run():
    code = get_code("POLAR_N64_K32")
    rng = np.random.default_rng(0)
    words = [(2.0 * (1.0 + 0.7 * rng.standard_normal(2 * 64)) / 0.49).astype(np.float32)
             for _ in range(6)]
    pdus = [pmt.cons(pmt.make_dict(), pmt.to_pmt(w)) for w in words]
    local = make_decoder("ecct", code)
    info = np.asarray(code.info_positions)
    expected = [local(torch.from_numpy(w.reshape(2, 64)))[:, info].reshape(-1).numpy()
                for w in words]

    port = free_port()
    server = ServerProcess(*MODELS, port=port).start()
    restarted = None
    served = genjscc.ecct_decoder(code="POLAR_N64_K32", backend=server.endpoint, timeout_s=0.5)
    backed_up = genjscc.ecct_decoder(code="POLAR_N64_K32", backend=server.endpoint,
                                     fallback="local", timeout_s=0.5)
    tb = gr.top_block()
    sinks = [blocks.message_debug(), blocks.message_debug()]
    tb.msg_connect(served, "out", sinks[0], "store")
    tb.msg_connect(backed_up, "out", sinks[1], "store")
    feeder = Feeder([served, backed_up], pdus)
    collectors = [Collector(s) for s in sinks]
    tb.start()
    for thread in (feeder, *collectors):
        thread.start()
    try:
        assert wait_for(lambda: len(collectors[0].ok_after(0.0)) >= 10, 30.0), "no frames"
        server.kill()
        killed_at = time.monotonic()
        time.sleep(1.5)
        restarted = ServerProcess(*MODELS, port=port).start()  # same port: clients reconnect
        ready = restarted.ready_at
        assert wait_for(lambda: collectors[0].ok_after(ready), 10.0), "no frames after restart"
        resumed = collectors[0].ok_after(ready)[0] - ready
        assert resumed < 2.0, f"frames flowed again {resumed:.2f} s after the restart"
        print(f"server decoding resumed {resumed:.2f} s after the restarted server was ready "
              f"({ready - killed_at:.1f} s after the kill)")
        time.sleep(0.5)
    finally:
        feeder.halt.set()
        feeder.join()
        # every posted PDU comes out of both blocks: nothing lost while the server was down
        drained = wait_for(lambda: all(s.num_messages() >= feeder.posted for s in sinks), 20.0)
        for c in collectors:
            c.halt.set()
            c.join()
        tb.stop()
        tb.wait()
        server.kill()
        if restarted is not None:
            restarted.stop()
    assert drained, [s.num_messages() for s in sinks]
    assert all(s.num_messages() == feeder.posted for s in sinks)

    failed = [(i, msg) for i, (_, msg) in enumerate(collectors[0].seen)
              if not meta(msg, "backend_ok")]
    assert failed and served.num_backend_failures() == len(failed)
    for i, msg in enumerate(msg for _, msg in collectors[0].seen):
        bits = pmt.to_python(pmt.cdr(msg))
        if meta(msg, "backend_ok"):
            assert meta(msg, "backend") == "server"
            assert np.array_equal(bits, expected[i % len(words)])
        else:  # marked, with the hard decision in place of the decoded bits
            assert meta(msg, "backend") == "failed"
            assert meta(msg, "backend_error") in ("unavailable", "no_worker", "expired",
                                                  "worker_lost")
            hard = (words[i % len(words)].reshape(2, 64) < 0)[:, info].reshape(-1)
            assert np.array_equal(bits, hard.astype(np.uint8))
    # the fallback block decoded every frame, locally while the server was away
    kinds = [meta(msg, "backend") for _, msg in collectors[1].seen]
    assert "local-fallback" in kinds and "server" in kinds
    assert backed_up.num_backend_failures() == kinds.count("local-fallback")
    for i, (_, msg) in enumerate(collectors[1].seen):
        assert np.array_equal(pmt.to_python(pmt.cdr(msg)), expected[i % len(words)])
