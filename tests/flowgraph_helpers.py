"""Shared parts of the PDU-block tests: run a chain of message blocks in a real flowgraph."""

from __future__ import annotations

import itertools
import time

import pmt

from gnuradio import blocks, gr

IN = pmt.intern("in")


def run_chain(chain, msgs, expect: int, timeout_s: float = 60.0, taps=(), done=None) -> list:
    """Connect ``chain`` (message blocks, ``out`` -> ``in``), post ``msgs`` into the first block
    and return the messages of the last once ``expect`` arrived, or ``done()`` is true, or
    ``timeout_s`` passed. ``taps``: extra ``(block, message_debug)`` pairs that store what
    ``block`` sends on ``out`` (read them with :func:`messages`)."""
    tb = gr.top_block()
    sink = blocks.message_debug()
    for a, b in itertools.pairwise(chain):
        tb.msg_connect(a, "out", b, "in")
    tb.msg_connect(chain[-1], "out", sink, "store")
    for block, debug in taps:
        tb.msg_connect(block, "out", debug, "store")
    tb.start()
    try:
        for m in msgs:
            chain[0].to_basic_block()._post(IN, m)
        deadline = time.monotonic() + timeout_s
        finished = done or (lambda: sink.num_messages() >= expect)
        while not finished() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # let a wrong extra message show up
    finally:
        tb.stop()
        tb.wait()
    return messages(sink)


def messages(debug) -> list:
    """Every message a ``blocks.message_debug`` stored, in order."""
    return [debug.get_message(i) for i in range(debug.num_messages())]
