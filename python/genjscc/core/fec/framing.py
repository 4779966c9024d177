"""Transport-block framing of a payload into codewords: zero padding and one CRC at the end.

The rule (``ldpc_encoder`` and ``ldpc_decoder`` follow it; one PDU is one transport block):

1. The ``A`` payload bits are followed by ``P`` zero bits, where ``C = ceil((A + L) / k)``
   codewords of ``k`` information bits are needed for the payload and an ``L``-bit CRC
   (``L = 0`` without CRC) and ``P = C k - L - A``.
2. The CRC is computed over the padded payload (``A + P`` bits) and fills the last ``L`` bits
   of the last codeword, so its position never depends on ``A``: the receiver checks it
   whether or not it knows ``A``.
3. The ``C k`` bits are cut into ``C`` rows of ``k`` and encoded as one batch; the ``C`` blocks
   of ``e`` code bits (``e = n`` for codes without rate matching) are concatenated.

A receiver that does not know ``A`` keeps the padding: :func:`unframe` returns all
``C k - L`` bits, or with ``whole_bytes`` the whole bytes among them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genjscc.core.fec.crc import CRC

__all__ = ["frame", "max_payload_bits", "num_codewords", "unframe"]


def num_codewords(num_bits: int, k: int, crc_length: int) -> int:
    """``C = ceil((A + L) / k)``, at least 1: codewords for ``num_bits`` payload bits."""
    return max(1, math.ceil((num_bits + crc_length) / k))


def max_payload_bits(codewords: int, k: int, crc_length: int) -> int:
    """``C k - L``: the most payload bits ``codewords`` codewords carry."""
    return codewords * k - crc_length


def frame(payload: np.ndarray, k: int, crc: CRC | None) -> torch.Tensor:
    """Information bits uint8 ``[C, k]`` of a payload of bits (uint8 0/1): padded with zeros,
    the CRC (if any) over the padded payload at the end of the last row."""
    crc_length = crc.length if crc is not None else 0
    codewords = num_codewords(payload.size, k, crc_length)
    block = np.zeros(codewords * k, dtype=np.uint8)
    block[:payload.size] = payload
    info = torch.from_numpy(block)
    if crc is not None:
        info[-crc_length:] = crc.compute(info[:-crc_length])
    return info.reshape(codewords, k)


def unframe(info: torch.Tensor, crc: CRC | None, num_bits: int | None = None,
            whole_bytes: bool = False) -> tuple[np.ndarray, bool | None]:
    """``(payload bits, crc_ok)`` of the decoded information bits ``[C k]`` (flat, CPU).

    Args:
        info: the ``C k`` information bits of the transport block, in order.
        crc: the CRC the transmitter attached, or None (``crc_ok`` is then None).
        num_bits: the payload length ``A`` when known; None keeps the padding.
        whole_bytes: without ``num_bits``, keep only whole bytes of the padded payload.
    """
    crc_ok = bool(crc.check(info)) if crc is not None else None
    if num_bits is None:
        num_bits = info.numel() - (crc.length if crc is not None else 0)
        if whole_bytes:
            num_bits -= num_bits % 8
    return info[:num_bits].numpy(), crc_ok
