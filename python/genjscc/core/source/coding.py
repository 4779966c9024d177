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

from collections.abc import Callable, Sequence

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
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    if probs.ndim != 2 or not 2 <= probs.shape[1] < 2 ** (PRECISION - 1):
        raise ValueError(f"probs must have shape (rows, V) with 2 <= V < 2**23, got {probs.shape}")
    p = np.nan_to_num(probs.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(p, 0.0, 1.0, out=p)
    vocab = p.shape[1]
    q = np.floor(p * float((1 << PRECISION) - vocab)).astype(np.int64) + 1
    # Integer sums only: a float sum could depend on SIMD order; argmax takes the first maximum.
    deficit = (1 << PRECISION) - q.sum(axis=1)
    q[np.arange(q.shape[0]), np.argmax(q, axis=1)] += deficit
    return q


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
                  threads: int = 1, progress: Progress | None = None) -> list[bytes]:
    """Range-code each symbol sequence independently; returns one payload per chunk.

    Args:
        model: the next-symbol model (same weights, device type and torch version as the
            decoder will use).
        chunks: symbol sequences, each at most ``model.max_symbols`` long, symbols in
            ``[0, model.vocab_size)``.
        rows: rows of every model call (micro-batch size); the decoder must use the same.
        threads: torch threads while coding; the decoder must use the same.
        progress: called as ``progress(coded_now, total)`` after each step.

    Returns:
        Payloads: the range coder's 32-bit words, little-endian (length a multiple of 4).
    """
    _check_rows(rows)
    for i, chunk in enumerate(chunks):
        if len(chunk) > model.max_symbols:
            raise ValueError(f"chunk {i} has {len(chunk)} symbols, more than the model's "
                             f"context ({model.max_symbols}); use a smaller chunk size")
        if len(chunk) and (min(chunk) < 0 or max(chunk) >= model.vocab_size):
            raise ValueError(f"chunk {i} has symbols outside [0, {model.vocab_size})")
    payloads: list[bytes] = [b""] * len(chunks)
    total = sum(len(c) for c in chunks)
    with coding_threads(threads), torch.inference_mode():
        for group in _groups(len(chunks), rows):
            seqs = [np.asarray(chunks[i], dtype=np.int32) for i in group]
            encoders = [_stream.queue.RangeEncoder() for _ in group]

            def encode_one(r: int, t: int, w: np.ndarray, seqs=seqs, encoders=encoders) -> int:
                encoders[r].encode(seqs[r][t:t + 1], _CATEGORICAL, w)
                return int(seqs[r][t])

            _run_group(model, rows, [len(s) for s in seqs], progress, total, encode_one)
            for r, i in enumerate(group):
                payloads[i] = encoders[r].get_compressed().astype("<u4").tobytes()
    return payloads


def decode_chunks(model: NextSymbolModel, payloads: Sequence[bytes | None],
                  n_symbols: Sequence[int], rows: int, threads: int = 1,
                  progress: Progress | None = None) -> list[list[int] | None]:
    """Decode payloads made by :func:`encode_chunks` with the same model, rows and threads.

    A payload given as ``None`` (known corrupt) is skipped: its row is stepped as padding, which
    leaves the other rows' floats unchanged. Returns the symbols of each chunk, or ``None``
    where the payload was skipped or the range decoder rejected it.
    """
    _check_rows(rows)
    if len(payloads) != len(n_symbols):
        raise ValueError("payloads and n_symbols must have the same length")
    results: list[list[int] | None] = [None] * len(payloads)
    total = sum(int(n) for n, p in zip(n_symbols, payloads, strict=True) if p is not None)
    with coding_threads(threads), torch.inference_mode():
        for group in _groups(len(payloads), rows):
            decoders: list = []
            lengths: list[int] = []
            for i in group:
                payload = payloads[i]
                ok = payload is not None and len(payload) % 4 == 0
                words = np.frombuffer(payload, dtype="<u4").astype(np.uint32) if ok else None
                decoders.append(_stream.queue.RangeDecoder(words) if ok else None)
                lengths.append(int(n_symbols[i]) if ok else 0)
            out = [[] for _ in group]
            failed = [False] * len(group)

            def decode_one(r: int, t: int, w: np.ndarray, decoders=decoders, out=out,
                           failed=failed) -> int:
                if failed[r]:
                    return 0
                try:
                    symbol = int(decoders[r].decode(_CATEGORICAL, w)[0])
                except Exception:  # constriction rejects some corrupt streams; never crash
                    failed[r] = True
                    return 0
                out[r].append(symbol)
                return symbol

            if any(lengths):
                _run_group(model, rows, lengths, progress, total, decode_one)
            for r, i in enumerate(group):
                if decoders[r] is not None and not failed[r]:
                    results[i] = out[r]
    return results


def _run_group(model: NextSymbolModel, rows: int, lengths: list[int],
               progress: Progress | None, total: int,
               code_symbol: Callable[[int, int, np.ndarray], int]) -> None:
    """Step one micro-batch of ``rows`` rows for ``max(lengths)`` steps.

    ``code_symbol(r, t, weights)`` codes symbol ``t`` of row ``r`` with the float64 weights row
    ``q - 1`` (shape ``(1, V)``) and returns the symbol, which is fed to the next step.
    """
    state = model.start_state(rows)
    tokens = torch.full((rows,), model.bos_id, dtype=torch.int64, device=model.device)
    next_tokens = np.zeros(rows, dtype=np.int64)
    for t in range(max(lengths, default=0)):
        state, probs = model.step(state, tokens)
        active = [r for r, n in enumerate(lengths) if t < n]
        rows_used = probs if len(active) == rows else probs[active]
        weights = (quantize_probabilities(rows_used) - 1).astype(np.float64)
        next_tokens[:] = 0
        for k, r in enumerate(active):
            next_tokens[r] = code_symbol(r, t, weights[k:k + 1])
        tokens = torch.from_numpy(next_tokens.copy()).to(model.device)
        if progress is not None:
            progress(len(active), total)
