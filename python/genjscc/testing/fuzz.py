"""Seeded hostile inputs for fuzzing the parsers and blocks: mutated byte strings (frames,
containers) and random PDUs of every shape the decoder blocks may meet on an open radio link.

Every function takes a ``numpy.random.Generator``, so a harness that seeds it reproduces its
inputs exactly; tests/test_fuzz.py runs them at test size, benchmarks/fuzz_serve.py and
benchmarks/fuzz_inputs.py at 10^5 inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["JSCC_KEYS", "META_KEYS", "jscc_image_frames", "mutate", "random_pdu",
           "tampered_jscc_frame"]

META_KEYS = ("codewords", "num_info_bits", "noise_var", "modulation", "snr_db", "height",
             "width")
"""Metadata keys the decoder blocks read: a random PDU sets one of them to a random value."""


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random edit of ``data``: flip 1-3 bits, cut it short, insert 1-8 random bytes, or
    repeat a piece of up to 15 bytes 1-3 times."""
    b = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0 and b:
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        b = b[:int(rng.integers(len(b) + 1))]
    elif kind == 2:
        i = int(rng.integers(len(b) + 1))
        b[i:i] = rng.bytes(int(rng.integers(1, 9)))
    elif b:
        i = int(rng.integers(len(b)))
        b[i:i] = b[i:i + int(rng.integers(1, 16))] * int(rng.integers(1, 4))
    return bytes(b)


def random_pdu(rng: np.random.Generator, max_items: int = 300):
    """A random message for a PDU block's input: float32 (with NaN, inf and 1e38 sprinkled
    in), complex64 (with NaN/inf), u8, float32 of a whole number of 64-value words, or no PDU
    at all (a symbol, a number); a third of the PDUs carry one of :data:`META_KEYS` set to
    an integer in [-5, 500)."""
    import pmt

    kind = int(rng.integers(6))
    size = int(rng.integers(0, max_items))
    if kind == 0:
        data = rng.normal(0, 10, size).astype(np.float32)
        data[rng.random(size) < 0.05] = rng.choice([np.nan, np.inf, -np.inf, 1e38])
        vec = pmt.to_pmt(data)
    elif kind == 1:
        data = (rng.normal(size=size) + 1j * rng.normal(size=size)).astype(np.complex64)
        data[rng.random(size) < 0.02] = complex(rng.choice([np.nan, np.inf]), 0.0)
        vec = pmt.to_pmt(data)
    elif kind == 2:
        vec = pmt.to_pmt(rng.integers(0, 256, size).astype(np.uint8))
    elif kind == 3:
        return pmt.intern("not a pdu")
    elif kind == 4:
        return pmt.to_pmt(float(rng.normal()))
    else:
        vec = pmt.to_pmt(rng.normal(0, 10, 64 * int(rng.integers(1, 4))).astype(np.float32))
    meta = pmt.make_dict()
    if rng.random() < 0.3:
        meta = pmt.dict_add(meta, pmt.intern(str(rng.choice(META_KEYS))),
                            pmt.from_long(int(rng.integers(-5, 500))))
    return pmt.cons(meta, vec)


JSCC_KEYS = ("height", "width", "image_id", "segment", "num_segments", "snr_db", "noise_var")
"""Metadata keys of a JSCC symbol frame that :func:`tampered_jscc_frame` may replace."""


def jscc_image_frames() -> list:
    """The symbol PDUs of one 32x32 image from jscc_image_encoder (4 frames)."""
    import pmt

    from gnuradio import genjscc

    enc = genjscc.jscc_image_encoder(snr_db=10.0, symbols_per_frame=128)
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("height"), pmt.from_long(32))
    meta = pmt.dict_add(meta, pmt.intern("width"), pmt.from_long(32))
    return enc.process(pmt.cons(meta, pmt.to_pmt(pixels.reshape(-1))))


def tampered_jscc_frame(frames: list, rng: np.random.Generator):
    """One of ``frames`` (:func:`jscc_image_frames`), half the time with its symbols cut,
    lengthened or spiked (NaN, inf, 1e30), and half the time with one metadata value replaced
    by a huge, negative, zero or NaN number."""
    import pmt

    frame = frames[int(rng.integers(len(frames)))]
    meta, y = pmt.car(frame), np.array(pmt.to_python(pmt.cdr(frame)), np.complex64)
    edit = int(rng.integers(6))  # 3 of 6: symbols untouched
    if edit == 0:
        y = y[:int(rng.integers(y.size + 1))]
    elif edit == 1:
        y = np.concatenate([y, y[:int(rng.integers(1, 64))]])
    elif edit == 2 and y.size:
        y[int(rng.integers(y.size))] = complex(rng.choice([np.nan, np.inf, 1e30]), 0.0)
    if rng.random() < 0.5:
        return pmt.cons(meta, pmt.to_pmt(y))
    key = pmt.intern(str(rng.choice(JSCC_KEYS)))
    value = rng.choice([0, -1, 7, 1 << 20, 1 << 40])
    meta = pmt.dict_add(meta, key, pmt.from_double(float("nan")) if rng.random() < 0.1
                        else pmt.from_long(int(value)))
    return pmt.cons(meta, pmt.to_pmt(y))
