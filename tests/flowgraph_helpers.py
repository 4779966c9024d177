"""Shared parts of the PDU-block tests: run a chain of message blocks in a real flowgraph;
make PDUs and read their data and metadata."""

from __future__ import annotations

import itertools
import time

import numpy as np
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


def u8_pdu(data, meta=None) -> pmt.pmt_base:
    """A PDU of uint8 ``data`` (any array-like) with ``meta`` (default: an empty dict)."""
    return _pdu(data, np.uint8, meta)


def f32_pdu(data, meta=None) -> pmt.pmt_base:
    """A PDU of float32 ``data``."""
    return _pdu(data, np.float32, meta)


def c32_pdu(data, meta=None) -> pmt.pmt_base:
    """A PDU of complex64 ``data``."""
    return _pdu(data, np.complex64, meta)


def _pdu(data, dtype, meta) -> pmt.pmt_base:
    return pmt.cons(meta if meta is not None else pmt.make_dict(),
                    pmt.to_pmt(np.asarray(data, dtype=dtype)))


def meta_ref(msg, key: str):
    """The PMT under ``key`` in a PDU's metadata (``PMT_NIL`` if absent)."""
    return pmt.dict_ref(pmt.car(msg), pmt.intern(key), pmt.PMT_NIL)


def data_of(msg) -> np.ndarray:
    """A PDU's data as a numpy array."""
    return np.asarray(pmt.to_python(pmt.cdr(msg)))
