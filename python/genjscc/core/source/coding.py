"""Range coding of symbol sequences with a language model's next-symbol probabilities.

Fixed-point model (documented in docs/lm-compression.md):

* Every probability row is quantized to integer weights ``q`` with ``sum(q) == 2**24`` and
  ``q >= 1`` for every symbol (the floor: each symbol keeps at least ``2**-24``, so any symbol
  stays encodable even where the model says 0). ``q = floor(p * (2**24 - V)) + 1`` in float64
  (exact IEEE arithmetic, the same on every machine for the same ``p``), and the integer deficit
  or surplus left by the floors goes to the row's first most probable symbol.
* constriction's range coder (queue, 24-bit precision, 32-bit words) receives ``q - 1`` as float64
  integers; its fast quantizer then reproduces ``q`` exactly (its scale factor is exactly 1), so
  the coder's distribution is the integer table above, bit for bit.

Chunks are coded independently: chunk ``i`` runs at row ``i % rows`` of micro-batch
``i // rows``; all rows of a micro-batch are stepped together with exactly ``rows`` rows (see
:mod:`genjscc.core.source.lm` for why the shape is fixed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Sequence

import numpy as np
import torch
from constriction import stream as _stream

from genjscc.core.source.lm import NextSymbolModel, coding_threads

PRECISION = 24
"""Bits of the fixed-point probabilities: weights sum to ``2**PRECISION`` (constriction's)."""

_CATEGORICAL = _stream.model.Categorical(perfect=False)

Progress = Callable[[int, int], None]
"""Called as ``progress(symbols_just_coded, total_symbols)`` after each step (progress bars)."""


def quantize_probabilities(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Integer weights (int64, shape of ``probs``) with rows summing to ``2**24``, each >= 1.

    Args:
        probs: probabilities, shape ``(rows, V)`` with ``2 <= V < 2**23``; NaN, infinite or
            negative entries count as 0, entries above 1 as 1.
    """
    return (coder_weights(probs) + 1.0).astype(np.int64)


def coder_weights(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """``quantize_probabilities(probs) - 1`` as float64: what constriction is given.

    All values are integers below ``2**24``, so float64 holds them and their sums exactly,
    whatever the summation order.
    """
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    if probs.ndim != 2 or not 2 <= probs.shape[1] < 2 ** (PRECISION - 1):
        raise ValueError(f"probs must have shape (rows, V) with 2 <= V < 2**23, got {probs.shape}")
    w = probs.astype(np.float64)  # a copy, changed in place below
    bad = ~np.isfinite(w)
    if bad.any():
        w[bad] = 0.0
    np.clip(w, 0.0, 1.0, out=w)
    vocab = w.shape[1]
    scale = float((1 << PRECISION) - vocab)
    np.multiply(w, scale, out=w)
    np.floor(w, out=w)
    # The floors leave a deficit (exact: integer-valued float64); the row's first most
    # probable symbol takes it.
    deficit = scale - w.sum(axis=1)
    w[np.arange(w.shape[0]), np.argmax(w, axis=1)] += deficit
    return w


def code_length_bits(probs: np.ndarray | torch.Tensor, symbols: Sequence[int]) -> float:
    """Ideal code length in bits of ``symbols[i]`` under quantized row ``i`` of ``probs``."""
    q = quantize_probabilities(probs)
    idx = np.asarray(symbols, dtype=np.int64)
    return float(-np.log2(q[np.arange(len(idx)), idx] / float(1 << PRECISION)).sum())


def _groups(n_chunks: int, rows: int) -> list[list[int]]:
    return [list(range(start, min(start + rows, n_chunks))) for start in range(0, n_chunks, rows)]


def _check_rows(rows: int) -> None:
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")


def encode_chunks(model: NextSymbolModel, chunks: Sequence[Sequence[int]], rows: int,
                  threads: int = 1, progress: Progress | None = None,
                  context: Sequence[int] = ()) -> list[bytes]:
    """Range-code each symbol sequence independently; returns one payload per chunk.

    Args:
        model: the next-symbol model (same weights, device type and torch version as the
            decoder will use).
        chunks: symbol sequences, each at most ``model.max_symbols`` long, symbols in
            ``[0, model.vocab_size)``.
        rows: rows of every model call (micro-batch size); the decoder must use the same.
        threads: torch threads while coding; the decoder must use the same.
        progress: called as ``progress(coded_now, total)`` after each step.
        context: symbols every chunk is conditioned on (fed after the begin-of-chunk symbol,
            not coded): a fixed prompt known to both ends; the decoder must use the same.

    Returns:
        Payloads: the range coder's 32-bit words, little-endian (length a multiple of 4).
    """
    return [payload for payload, _ in
            _encode(model, chunks, rows, threads, progress, False, context)]


def encode_chunks_bits(model: NextSymbolModel, chunks: Sequence[Sequence[int]], rows: int,
                       threads: int = 1, progress: Progress | None = None,
                       context: Sequence[int] = ()) -> list[np.ndarray]:
    """Like :func:`encode_chunks`, but each payload is cut to the fewest bits that still
    decode: the bits of the coder's 32-bit words, most significant first, the last ones
    dropped or rounded up by one unit as long as :func:`bits_to_payload` (zeros appended)
    gives a payload that decodes to the same symbols. The coder's words end with up to
    about 32 bits that a reader who knows where the symbols end does not need; for short
    messages (a sentence over a radio link) those bits are a large share of the message.

    Returns:
        uint8 arrays of 0/1 (the decoder's input after :func:`bits_to_payload`).
    """
    return [_shortest_prefix(payload, tables, chunk) for (payload, tables), chunk in
            zip(_encode(model, chunks, rows, threads, progress, True, context), chunks,
                strict=True)]


def bits_to_payload(bits: np.ndarray) -> bytes:
    """A payload of :func:`encode_chunks_bits` bits as :func:`decode_chunks` takes it: zeros
    appended to whole 32-bit words and two more zero words (the range decoder reads up to two
    words ahead of the symbol it decodes)."""
    padded = np.zeros(32 * (-(-len(bits) // 32) + 2), dtype=np.uint8)
    padded[:len(bits)] = bits
    return np.packbits(padded).view(">u4").astype("<u4").tobytes()


def _shortest_prefix(payload: bytes, tables: np.ndarray, symbols: Sequence[int]) -> np.ndarray:
    """The shortest bit prefix of ``payload`` (or that prefix plus one unit in its last bit)
    that decodes to ``symbols`` with the coder weights ``tables`` ``[n, V]`` once padded by
    :func:`bits_to_payload`. Checked by decoding, so the receiver's result is certain."""
    bits = np.unpackbits(np.frombuffer(payload, dtype="<u4").astype(">u4").view(np.uint8))
    if not len(symbols):
        return bits[:0]
    target = np.asarray(symbols, dtype=np.int32)
    q = tables[np.arange(len(target)), target] + 1.0
    information = float(np.sum(PRECISION - np.log2(q)))  # bits the symbols carry

    def decodes(candidate: np.ndarray) -> bool:
        words = np.frombuffer(bits_to_payload(candidate), dtype="<u4").astype(np.uint32)
        try:
            got = _stream.queue.RangeDecoder(words).decode(_CATEGORICAL, tables)
        except Exception:  # a prefix too short may leave the decoder's valid range
            return False
        return np.array_equal(got, target)

    for length in range(max(0, int(information) - 8), len(bits)):
        prefix = bits[:length].copy()
        if decodes(prefix):
            return prefix
        zeros = np.flatnonzero(prefix == 0)  # + one unit: the last 0 becomes 1, the ones after it 0
        if zeros.size:
            prefix[zeros[-1]] = 1
            prefix[zeros[-1] + 1:] = 0
            if decodes(prefix):
                return prefix
    return bits


def _encode(model: NextSymbolModel, chunks: Sequence[Sequence[int]], rows: int, threads: int,
            progress: Progress | None, keep_tables: bool,
            context: Sequence[int]) -> list[tuple[bytes, np.ndarray]]:
    """Payload of each chunk and, with ``keep_tables``, its coder weights ``[n, V]``."""
    _check_rows(rows)
    for i, chunk in enumerate(chunks):
        if len(chunk) + len(context) > model.max_symbols:
            raise ValueError(f"chunk {i} has {len(chunk)} symbols (and {len(context)} of "
                             f"context), more than the model's context ({model.max_symbols}); "
                             "use a smaller chunk size")
        if len(chunk) and (min(chunk) < 0 or max(chunk) >= model.vocab_size):
            raise ValueError(f"chunk {i} has symbols outside [0, {model.vocab_size})")
    out: list[tuple[bytes, np.ndarray]] = [(b"", np.zeros(0))] * len(chunks)
    total = sum(len(c) for c in chunks)
    with coding_threads(threads), torch.inference_mode():
        for group in _groups(len(chunks), rows):
            tables: list[list[np.ndarray]] | None = \
                [[] for _ in group] if keep_tables else None
            coded = _encode_group(model, rows, [chunks[i] for i in group], progress, total,
                                  tables, context)
            for r, payload in enumerate(coded):
                kept = np.concatenate(tables[r]) if tables and tables[r] else np.zeros(0)
                out[group[r]] = (payload, kept)
    return out


def _encode_group(model: NextSymbolModel, rows: int, seqs: Sequence[Sequence[int]],
                  progress: Progress | None, total: int,
                  tables: list[list[np.ndarray]] | None = None,
                  context: Sequence[int] = ()) -> list[bytes]:
    """Encode the chunks of one micro-batch (``len(seqs) <= rows``); ``tables``, if given,
    receives each row's coder weights, block by block.

    The symbols are known in advance, so each row's quantized distributions are buffered and
    handed to its range encoder a block of steps at a time (one call per row per block instead
    of one per symbol); the coded stream is the same as symbol by symbol.
    """
    lengths = [len(s) for s in seqs]
    width = max(lengths, default=0)
    padded = np.zeros((rows, width), dtype=np.int64)  # padding rows and tails feed 0
    for r, seq in enumerate(seqs):
        padded[r, :len(seq)] = np.asarray(seq, dtype=np.int64)
    encoders = [_stream.queue.RangeEncoder() for _ in seqs]
    block = max(1, min(256, _BUFFER_BYTES // (8 * model.vocab_size * max(1, len(seqs)))))
    buffer = np.zeros((len(seqs), block, model.vocab_size), dtype=np.float64)
    ends = np.asarray(lengths, dtype=np.int64) - 1
    stepper = _steps(model, rows, width, context)
    probs = next(stepper, None)
    for t in range(width):
        active = [r for r, n in enumerate(lengths) if t < n]
        slot = t % block
        buffer[active, slot] = _weights(probs, active, rows)
        # hand a row's block to its encoder when the block is full or the row ends
        flush = active if slot == block - 1 else np.flatnonzero(ends == t).tolist()
        for r in flush:
            encoders[r].encode(padded[r, t - slot:t + 1].astype(np.int32), _CATEGORICAL,
                               buffer[r, :slot + 1])
            if tables is not None:
                tables[r].append(buffer[r, :slot + 1].copy())
        if progress is not None:
            progress(len(active), total)
        probs = stepper.send(padded[:, t]) if t + 1 < width else None
    return [e.get_compressed().astype("<u4").tobytes() for e in encoders]


def decode_chunks(model: NextSymbolModel, payloads: Sequence[bytes | None],
                  n_symbols: Sequence[int], rows: int, threads: int = 1,
                  progress: Progress | None = None, stop: np.ndarray | None = None,
                  context: Sequence[int] = ()) -> list[list[int] | None]:
    """Decode payloads made by :func:`encode_chunks` with the same model, rows, threads and
    ``context``.

    A payload given as ``None`` (known corrupt) is skipped: its row is stepped as padding, which
    leaves the other rows' floats unchanged. Returns the symbols of each chunk, or ``None``
    where the payload was skipped or the range decoder rejected it.

    ``stop``: a boolean mask over the vocabulary of terminating symbols, for messages coded
    with a terminator instead of a known length: each chunk then ends with its first symbol
    in ``stop`` (included in the result), ``n_symbols`` are only upper bounds, and a chunk
    that reaches its bound without a terminator is rejected (``None``).
    """
    _check_rows(rows)
    if len(payloads) != len(n_symbols):
        raise ValueError("payloads and n_symbols must have the same length")
    results: list[list[int] | None] = [None] * len(payloads)
    # with terminators the symbol count is not known in advance (0: unknown)
    total = 0 if stop is not None else \
        sum(int(n) for n, p in zip(n_symbols, payloads, strict=True) if p is not None)
    with coding_threads(threads), torch.inference_mode():
        for group in _groups(len(payloads), rows):
            decoded = _decode_group(model, rows, [payloads[i] for i in group],
                                    [int(n_symbols[i]) for i in group], progress, total, stop,
                                    context)
            for r, i in enumerate(group):
                results[i] = decoded[r]
    return results


def _decode_group(model: NextSymbolModel, rows: int, payloads: Sequence[bytes | None],
                  n_symbols: Sequence[int], progress: Progress | None,
                  total: int, stop: np.ndarray | None = None,
                  context: Sequence[int] = ()) -> list[list[int] | None]:
    decoders: list = []
    lengths: list[int] = []
    for payload, n in zip(payloads, n_symbols, strict=True):
        ok = payload is not None and len(payload) % 4 == 0
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32) if ok else None
        decoders.append(_stream.queue.RangeDecoder(words) if ok else None)
        lengths.append(n if ok else 0)
    out: list[list[int]] = [[] for _ in payloads]
    failed = [False] * len(payloads)
    width = max(lengths, default=0)
    next_tokens = np.zeros(rows, dtype=np.int64)
    stepper = _steps(model, rows, width, context)
    probs = next(stepper, None)
    for t in range(width):
        active = [r for r, n in enumerate(lengths) if t < n]
        if not active:  # every row has met its terminator
            break
        weights = _weights(probs, active, rows)
        next_tokens[:] = 0
        for k, r in enumerate(active):
            if failed[r]:
                continue
            try:
                symbol = int(decoders[r].decode(_CATEGORICAL, weights[k:k + 1])[0])
            except Exception:  # constriction rejects some corrupt streams; never crash
                failed[r] = True
                continue
            out[r].append(symbol)
            next_tokens[r] = symbol
            if stop is not None and stop[symbol]:
                lengths[r] = t + 1  # inactive from the next step on
        if progress is not None:
            progress(len(active), total)
        probs = stepper.send(next_tokens) if t + 1 < width else None
    ended = [stop is None or (bool(o) and bool(stop[o[-1]])) for o in out]
    return [out[r] if decoders[r] is not None and not failed[r] and ended[r] else None
            for r in range(len(payloads))]


_BUFFER_BYTES = 1 << 25  # float64 distributions buffered per micro-batch while encoding


def _weights(probs: torch.Tensor, active: list[int], rows: int) -> np.ndarray:
    """The active rows' quantized distributions as constriction takes them (``q - 1``).

    An exact model's step already gives the integer table ``q``; a float model's
    probabilities are quantized here."""
    probs = probs if len(active) == rows else probs[active]
    if not torch.is_floating_point(probs):
        return integer_weights(probs)
    return coder_weights(probs)


def integer_weights(freqs: torch.Tensor | np.ndarray) -> np.ndarray:
    """An exact model's integer table ``q`` (rows summing to ``2**24``, entries >= 1) as
    constriction takes it: ``q - 1`` in float64. Checked, since a table that breaks the
    contract would make the coder fail far from the cause."""
    q = np.asarray(freqs.cpu().numpy() if isinstance(freqs, torch.Tensor) else freqs,
                   dtype=np.int64)
    if q.ndim != 2 or (q.size and q.min() < 1) or (q.sum(axis=1) != 1 << PRECISION).any():
        raise ValueError("an integer frequency table must have rows of entries >= 1 summing "
                         f"to 2**{PRECISION}")
    weights = q.astype(np.float64)
    weights -= 1.0  # exact: integers below 2**24
    return weights


def _steps(model: NextSymbolModel, rows: int, width: int, context: Sequence[int] = ()
           ) -> Generator[torch.Tensor, np.ndarray, None]:
    """Step one micro-batch of exactly ``rows`` rows ``width`` times: yields the probabilities
    of step ``t`` and receives the ``rows`` input symbols of step ``t + 1`` (the begin-of-chunk
    symbol, then the ``context`` symbols, feed the steps before step 0). The same for encoder
    and decoder: one code path, fixed shapes."""
    if width == 0:
        return
    state, tokens = _primed(model, rows, tuple(int(c) for c in context))
    for _ in range(width):
        state, probs = model.step(state, tokens)
        fed = yield probs
        tokens = torch.from_numpy(np.array(fed, dtype=np.int64)).to(model.device)


_PRIMED: dict[tuple[int, int, tuple[int, ...]], tuple[object, torch.Tensor, NextSymbolModel]] = {}


def _primed(model: NextSymbolModel, rows: int, context: tuple[int, ...]
            ) -> tuple[object, torch.Tensor]:
    """The state after the begin-of-chunk symbol and ``context[:-1]``, and the next input
    (``context[-1]``, or the begin-of-chunk symbol without context). A context's state is
    computed once per model and row count and copied for each use (the same values as
    stepping it again: the same calls on the same shapes), where the state can be copied:
    a tensor (lm-small) or a transformers cache (Hugging Face models)."""
    key = (id(model), rows, context)
    if key in _PRIMED and _PRIMED[key][2] is model:
        state, tokens, _ = _PRIMED[key]
        return _copy_state(state), tokens
    state = model.start_state(rows)
    tokens = torch.full((rows,), model.bos_id, dtype=torch.int64, device=model.device)
    for symbol in context:
        state, _ = model.step(state, tokens)
        tokens = torch.full((rows,), symbol, dtype=torch.int64, device=model.device)
    if context and _copy_state(state) is not None:
        if len(_PRIMED) >= 8:
            _PRIMED.clear()
        _PRIMED[key] = (_copy_state(state), tokens, model)
    return state, tokens


def _copy_state(state: object) -> object | None:
    """A copy of a model state that steps can extend without touching the original, or None
    for a state this module does not know how to copy (e.g. a remote session)."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if type(state).__name__.endswith("Cache") and type(state).__module__.startswith(
            "transformers"):
        return copy.deepcopy(state)
    return None
