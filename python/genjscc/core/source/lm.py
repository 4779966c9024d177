"""Next-symbol probability models for lossless LM coding, and the rules that make them exact.

A range coder only decodes what it encoded if the decoder sees *bit-identical* probabilities.
Floats from a neural network are reproducible only when everything that shapes the arithmetic is
the same on both sides, so every model used by :mod:`genjscc.core.source.coding` follows one
protocol, :class:`NextSymbolModel`, and the coder drives it the same way when encoding and
decoding:

* **One code path.** Encoder and decoder both call ``start_state`` and then ``step`` once per
  symbol (incremental, KV-cached or recurrent). A full-sequence forward pass is never used for
  coding: its floats differ from the incremental pass (measured on SmolLM2: no row of 200 was
  bit-identical), so a decoder using the other path fails.
* **Fixed shapes.** A GEMM row's floats can depend on the batch shape (measured here with MKL:
  a 1-, 2-, 3- or 5-row product differs from the same rows inside a 128-row product). The coder
  therefore always calls ``step`` with exactly ``rows`` rows (padding rows when fewer chunks
  remain), and a chunk always sits at the same row of the same micro-batch (chunk ``i`` at row
  ``i % rows`` of micro-batch ``i // rows``). ``rows`` is stored in the container, so the
  decoder's own batch size does not matter.
* **Fixed thread count.** :func:`coding_threads` pins ``torch.set_num_threads`` while coding and
  restores it after; the count is stored in the container too.

The guarantee and its limit: decoding reproduces the encoder's probabilities bit for bit on the
same device type (CPU or CUDA), the same torch version and the same model weights (checked by
sha256). Another CPU family, torch version or a GPU may round differently; then the per-chunk
CRC of the decoded bytes fails and the chunk is reported corrupt, never silently wrong.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class NextSymbolModel(Protocol):
    """What the coder needs from a language model.

    Attributes:
        model_id: short identifier stored in the container (e.g. ``"lm-small"``,
            ``"smollm2-135m"``, ``"hf:NAME"``).
        weights_sha256: hex sha256 identifying the exact weights; the decoder refuses a
            container made with other weights.
        vocab_size: number of symbols the coder codes (size of each probability row).
        bos_id: input symbol fed at the first ``step`` of every chunk (may be ``>= vocab_size``
            for byte models whose begin-of-sequence is not a codable symbol).
        max_symbols: largest number of symbols one chunk may hold (context length).
        default_batch: chunks stepped together when the caller does not say (memory and
            speed trade-off of this model).
        device: where the model runs.
    """

    model_id: str
    weights_sha256: str
    vocab_size: int
    bos_id: int
    max_symbols: int
    default_batch: int
    device: torch.device

    def start_state(self, batch: int) -> Any:
        """The state of ``batch`` empty sequences (before ``bos_id`` has been fed)."""
        ...

    def step(self, state: Any, tokens: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Feed one input symbol per row (int64, shape ``(batch,)``).

        Returns the new state and the next-symbol probabilities, float32 of shape
        ``(batch, vocab_size)`` on the CPU (rows sum to about 1).
        """
        ...

    def tokenize(self, data: bytes) -> list[int]:
        """The symbols that code ``data``; ``detokenize(tokenize(x)) == x`` for any bytes."""
        ...

    def detokenize(self, symbols: list[int]) -> bytes:
        """The bytes of a symbol sequence (inverse of :meth:`tokenize`)."""
        ...


_THREADS_LOCK = threading.Condition()
_threads_users = 0  # coders inside coding_threads now (all with the same count)
_threads_count = 0  # the count they share
_threads_before = 0  # torch's count before the first of them entered


@contextlib.contextmanager
def coding_threads(threads: int) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)``, restoring the previous count after.

    The thread count is part of what the coder keeps fixed between encoder and decoder
    (stored in the container): a multi-threaded kernel may split a reduction differently.
    torch's count is process-wide, so coders in several threads of one process (an encoder
    and a decoder block of one flowgraph) share it: coders asking for the same count run
    together, one asking for another count waits until they are done, and the count is
    restored when the last one leaves.
    """
    global _threads_users, _threads_count, _threads_before
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    with _THREADS_LOCK:
        _THREADS_LOCK.wait_for(lambda: _threads_users == 0 or _threads_count == threads)
        if _threads_users == 0:
            _threads_before, _threads_count = torch.get_num_threads(), threads
            torch.set_num_threads(threads)
        _threads_users += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)
                _THREADS_LOCK.notify_all()


def device_kind(device: torch.device | str) -> str:
    """``"cpu"`` or ``"cuda"``: the part of a device that decides the arithmetic."""
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    return kind
