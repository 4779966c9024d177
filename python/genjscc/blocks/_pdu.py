"""Shared PDU plumbing for the gr-genjscc message blocks: validation, counters, logging.

A PDU is ``pmt.cons(metadata, vector)`` with ``metadata`` a PMT dictionary (``PMT_NIL`` is
accepted as an empty one) and ``vector`` a uniform PMT vector. :class:`PduBlock` turns every
bad input into a :class:`PduError`: the block logs it with its GNU Radio logger, counts it in
``num_errors()``, drops the message and keeps running.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

import numpy as np
import pmt

from gnuradio import gr

__all__ = [
    "PORT_IN",
    "PORT_OUT",
    "PduBlock",
    "PduError",
    "keep_alive",
    "make_pdu",
    "parse_pdu",
    "uniform_vector",
    "vector_array",
]

PORT_IN = pmt.intern("in")
PORT_OUT = pmt.intern("out")

# Item kinds a block may ask for, with the PMT predicate and the numpy dtype they give.
_KINDS: dict[str, tuple[Callable[[pmt.pmt_base], bool], type]] = {
    "u8": (pmt.is_u8vector, np.uint8),
    "f32": (pmt.is_f32vector, np.float32),
    "c32": (pmt.is_c32vector, np.complex64),
}

_VECTOR_KIND_NAMES = (
    ("u8", pmt.is_u8vector),
    ("s8", pmt.is_s8vector),
    ("u16", pmt.is_u16vector),
    ("s16", pmt.is_s16vector),
    ("u32", pmt.is_u32vector),
    ("s32", pmt.is_s32vector),
    ("u64", pmt.is_u64vector),
    ("s64", pmt.is_s64vector),
    ("f32", pmt.is_f32vector),
    ("f64", pmt.is_f64vector),
    ("c32", pmt.is_c32vector),
    ("c64", pmt.is_c64vector),
)


class PduError(ValueError):
    """A message that a block cannot process; the block logs it, counts it and drops it."""


def _vector_kind(vec: pmt.pmt_base) -> str:
    for name, pred in _VECTOR_KIND_NAMES:
        if pred(vec):
            return name
    return "non-uniform PMT" if not pmt.is_uniform_vector(vec) else "unknown uniform vector"


def parse_pdu(msg: pmt.pmt_base, kind: str) -> tuple[pmt.pmt_base, np.ndarray]:
    """Split a PDU into ``(metadata dict, numpy array)``, checking its shape and item type.

    Args:
        msg: the received message.
        kind: expected item type, ``"u8"``, ``"f32"`` or ``"c32"``.

    Returns:
        The metadata (a PMT dict; ``PMT_NIL`` becomes an empty dict) and a 1-D numpy array of
        dtype uint8, float32 or complex64. The array is a copy the caller may keep.

    Raises:
        PduError: not a pair, metadata not a dict, vector of another item type, empty vector.
    """
    if not pmt.is_pair(msg):
        raise PduError("expected a PDU (pmt.cons(metadata dict, uniform vector)), got a non-pair")
    meta, vec = pmt.car(msg), pmt.cdr(msg)
    if pmt.is_null(meta):
        meta = pmt.make_dict()
    elif not pmt.is_dict(meta):
        raise PduError("PDU metadata (car) must be a PMT dict or PMT_NIL")
    pred, dtype = _KINDS[kind]
    if not pred(vec):
        raise PduError(f"PDU data must be a {kind} vector, got {_vector_kind(vec)}")
    n = pmt.length(vec)
    if n == 0:
        raise PduError("empty PDU: nothing to process")
    return meta, vector_array(vec, dtype)


def make_pdu(meta: pmt.pmt_base, data: np.ndarray) -> pmt.pmt_base:
    """Build a PDU from a metadata dict and a 1-D uint8 / float32 / complex64 numpy array."""
    return pmt.cons(meta, uniform_vector(data))


# PMT's serialized uniform vector (pmt_serial_tags.h): tag 0x0a, item type, big-endian u32
# length, one pad-count byte (1) and one pad byte, then the items big-endian.
_UNIFORM_VECTOR_TAG = 0x0A
_ITEM_TYPES = {np.dtype(np.uint8): 0x00, np.dtype(np.float32): 0x08,
               np.dtype(np.complex64): 0x0A}
_HEADER = struct.Struct(">BBIBB")


def uniform_vector(data: np.ndarray) -> pmt.pmt_base:
    """A PMT uniform vector (u8, f32 or c32) holding a 1-D numpy array.

    Built by PMT's own deserializer from the array's big-endian bytes: one pass in C++,
    where ``pmt.to_pmt`` converts item by item (about 140 ns per item, 0.27 ms for a frame of
    960 complex symbols). Other dtypes and shapes go through ``pmt.to_pmt``.
    """
    array = np.asarray(data)
    item = _ITEM_TYPES.get(array.dtype)
    if item is None or array.ndim != 1:
        return pmt.to_pmt(np.ascontiguousarray(array))
    header = _HEADER.pack(_UNIFORM_VECTOR_TAG, item, array.size, 1, 0)
    return pmt.deserialize_str(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def vector_array(vec: pmt.pmt_base, dtype: type) -> np.ndarray:
    """A copy of a u8, f32 or c32 PMT uniform vector as a numpy array of ``dtype`` (the
    inverse of :func:`uniform_vector`, from PMT's serialized bytes)."""
    blob = pmt.serialize_str(vec)
    tag, item, size, npad, _ = _HEADER.unpack_from(blob)
    for kind, code in _ITEM_TYPES.items():
        if tag == _UNIFORM_VECTOR_TAG and item == code:
            items = np.frombuffer(blob, kind.newbyteorder(">"), size, _HEADER.size - 1 + npad)
            return items.astype(dtype)
    return np.array(pmt.to_python(vec), dtype=dtype, copy=True)


# GNU Radio 3.10's Python block gateway holds only a non-owning handle to the Python object,
# and a block's scheduler thread calls back into it while it shuts down, which can be after
# tb.wait() has returned. A block that Python frees first (a local of a function that built
# and ran a flowgraph) crashes the process with SIGSEGV (measured here; upstream issues
# gnuradio#3435, #5133, #8137). Keeping every instance alive for the life of the process
# costs a few kB per block and removes the crash for every caller.
_LIVE_BLOCKS: list[gr.basic_block] = []
_LIVE_LOCK = threading.Lock()


def keep_alive(block: gr.basic_block) -> None:
    """Never free ``block`` (see the note on _LIVE_BLOCKS): for Python blocks of ours."""
    with _LIVE_LOCK:
        _LIVE_BLOCKS.append(block)


class PduBlock(gr.basic_block):
    """Base of the PDU-in / PDU-out blocks: ports ``in`` and ``out``, counters, error handling.

    Subclasses implement :meth:`process`, which returns the output PDU, a list of PDUs (sent
    in order), or None to emit nothing, and raises :class:`PduError` for bad input. Any other
    exception is logged and counted too, so a bad message never stops the flowgraph. Instances
    live until the process ends (see ``keep_alive``).
    """

    def __init__(self, name: str):
        gr.basic_block.__init__(self, name=name, in_sig=None, out_sig=None)
        keep_alive(self)
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.set_msg_handler(PORT_IN, self._handle)
        self._count_lock = threading.Lock()
        self._num_processed = 0
        self._num_errors = 0

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base | list[pmt.pmt_base] | None:
        """Turn one input message into output PDUs; raise PduError for bad input."""
        raise NotImplementedError

    def _handle(self, msg: pmt.pmt_base) -> None:
        try:
            out = self.process(msg)
        except PduError as err:
            self._count_error(f"dropped a message: {err}")
            return
        except Exception as err:
            # A bug or an odd message must not kill the message thread: log, count, go on.
            self._count_error(f"dropped a message after an unexpected {type(err).__name__}: {err}")
            return
        with self._count_lock:
            self._num_processed += 1
        for pdu in out if isinstance(out, list) else () if out is None else (out,):
            self.message_port_pub(PORT_OUT, pdu)

    def _count_error(self, text: str) -> None:
        with self._count_lock:
            self._num_errors += 1
        self.logger.warn(text)

    def num_processed(self) -> int:
        """Messages processed successfully (emitted, or consumed on purpose)."""
        with self._count_lock:
            return self._num_processed

    def num_errors(self) -> int:
        """Messages dropped because they were malformed (each one was logged)."""
        with self._count_lock:
            return self._num_errors
