"""Next-symbol probability models for lossless LM coding, and the rules that make them exact.

A range coder only decodes what it encoded if the decoder sees *bit-identical* probabilities.
Every model used by :mod:`genjscc.core.source.coding` follows one protocol,
:class:`NextSymbolModel`, and the coder drives it the same way when encoding and decoding.

**Exact models** (``arithmetic`` names an exact arithmetic, e.g. lm-small's ``int8-lut/1``,
:mod:`genjscc.core.source.fixed_point`) compute their frequency tables with integers: the
same bits on every CPU, GPU, thread count and batch shape. Containers made with them decode
on any machine.

**Float models** (SmolLM2, local Hugging Face models, float byte models) give probabilities
that are reproducible only where everything that shapes the float arithmetic is the same,
so for them the coder also keeps:

* **One code path.** Encoder and decoder both call ``start_state`` and then ``step`` once per
  symbol (incremental, KV-cached or recurrent). A full-sequence forward pass is never used for
  coding: its floats differ from the incremental pass (measured on SmolLM2: no row of 200 was
  bit-identical).
* **Fixed shapes.** A GEMM row's floats can depend on the batch shape, so the coder always
  calls ``step`` with exactly ``rows`` rows (padding rows when fewer chunks remain), and chunk
  ``i`` always sits at row ``i % rows`` of micro-batch ``i // rows``; ``rows`` is stored.
* **Fixed thread count.** :func:`coding_threads` pins ``torch.set_num_threads`` while coding and
  restores it after; the count is stored in the container too.
* **A fingerprint of the arithmetic** (:func:`float_fingerprint`: device, CPU kernel set and
  model or GPU name, torch version, dtype) is stored in the container; a decoder with another
  fingerprint refuses before decoding, naming both, instead of losing every chunk.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, runtime_checkable

import torch

from genjscc.core.threads import torch_threads


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
        arithmetic: ``""`` for float models; else the name of the exact integer arithmetic
            its ``step`` uses (containers record it; see the module docstring).
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

        Returns the new state and, on the CPU, shape ``(batch, vocab_size)``: float models
        the next-symbol probabilities (float32, rows sum to about 1); exact models the
        coder's integer frequency table (int64, rows sum to ``2**24``, entries >= 1).
        """
        ...

    def tokenize(self, data: bytes) -> list[int]:
        """The symbols that code ``data``; ``detokenize(tokenize(x)) == x`` for any bytes."""
        ...

    def detokenize(self, symbols: list[int]) -> bytes:
        """The bytes of a symbol sequence (inverse of :meth:`tokenize`)."""
        ...


def coding_threads(threads: int) -> contextlib.AbstractContextManager[None]:
    """Pin torch's thread count while coding (:func:`genjscc.core.threads.torch_threads`,
    process-wide and thread-safe): the count is part of what the coder keeps fixed between
    encoder and decoder of a float model (stored in the container), since a multi-threaded
    kernel may split a reduction differently."""
    if threads is None:
        raise ValueError("threads must be a positive integer, got None")
    return torch_threads(threads)


def device_kind(device: torch.device | str) -> str:
    """``"cpu"`` or ``"cuda"``: the part of a device that decides the arithmetic."""
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    return kind


def arithmetic_of(model: Any) -> str:
    """What a container records about the arithmetic of ``model``'s probabilities: its exact
    arithmetic's name, or ``float:`` and :func:`float_fingerprint` of where it runs (a remote
    model carries the server's fingerprint)."""
    exact = getattr(model, "arithmetic", "")
    if exact:
        return str(exact)
    remote = getattr(model, "remote_fingerprint", "")
    return "float:" + (remote or float_fingerprint(model.device))


def float_fingerprint(device: torch.device | str) -> str:
    """Device kind, kernel set and processor, torch version and default dtype: what decides
    a float model's rounding. Short enough for the container's 255-byte field."""
    from genjscc.machine import cpu_name

    kind = device_kind(device)
    if kind == "cuda":
        where = torch.cuda.get_device_name(torch.device(device))
        detail = f"{where}:cuda{torch.version.cuda}"
    else:
        detail = f"{torch.backends.cpu.get_cpu_capability()}:{cpu_name()}"
        if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
            detail += ":no-onednn"
    return f"{kind}:{detail}:torch{torch.__version__}:{torch.get_default_dtype()}"[:240]
