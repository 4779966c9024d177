"""Shared parts of the PDU-block tests: run a chain of message blocks in a real flowgraph."""

from __future__ import annotations

import itertools
import time

import pmt

from gnuradio import blocks, gr

IN = pmt.intern("in")


def run_chain(chain, msgs, expect: int, timeout_s: float = 60.0) -> list:
    """Connect ``chain`` (``out`` -> ``in``), post ``msgs`` into the first block and return the
    messages of the last once ``expect`` arrived (or ``timeout_s`` passed)."""
    tb = gr.top_block()
    sink = blocks.message_debug()
    for a, b in itertools.pairwise(chain):
        tb.msg_connect(a, "out", b, "in")
    tb.msg_connect(chain[-1], "out", sink, "store")
    tb.start()
    try:
        for m in msgs:
            chain[0].to_basic_block()._post(IN, m)
        deadline = time.monotonic() + timeout_s
        while sink.num_messages() < expect and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # let a wrong extra message show up
    finally:
        tb.stop()
        tb.wait()
    return [sink.get_message(i) for i in range(sink.num_messages())]
