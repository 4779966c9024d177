"""Packet-level erasure code without a return channel: a systematic random linear fountain
code over GF(2).

A message of ``K`` equal source blocks is sent as coded packets ``0, 1, 2, ...``: packet
``i < K`` is source block ``i``; packet ``i >= K`` is the XOR of a pseudo-random half of the
source blocks, chosen by a generator seeded with ``(code_id, i)``, so the receiver rebuilds
the choice from the packet index alone. Any ``K`` packets whose choices are linearly
independent recover the message; with random repair packets, ``K + 2`` received packets
succeed with probability about 0.75 and ``K + 10`` with about 0.999. A transmitter can go on
producing new packets for ever (``--repeat``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FountainDecoder", "coefficients", "encode_packet"]


def coefficients(code_id: int, index: int, num_source: int) -> np.ndarray:
    """bool ``[K]``: the source blocks XORed into packet ``index``."""
    if index < num_source:
        row = np.zeros(num_source, bool)
        row[index] = True
        return row
    rng = np.random.default_rng([code_id & 0xFFFFFFFF, index])
    row = rng.random(num_source) < 0.5
    if not row.any():
        row[rng.integers(num_source)] = True
    return row


def encode_packet(blocks: np.ndarray, code_id: int, index: int) -> np.ndarray:
    """Payload (uint8 ``[B]``) of packet ``index`` from source blocks uint8 ``[K, B]``."""
    row = coefficients(code_id, index, blocks.shape[0])
    return np.bitwise_xor.reduce(blocks[row], axis=0)


class FountainDecoder:
    """Incremental Gaussian elimination over GF(2) on received packets.

    Args:
        code_id: the transmitter's code id (seeds the repair choices).
        num_source: K.
        block_len: bytes per block.
    """

    def __init__(self, code_id: int, num_source: int, block_len: int):
        if num_source < 1 or block_len < 1:
            raise ValueError("need num_source >= 1 and block_len >= 1")
        self.code_id, self.num_source, self.block_len = code_id, num_source, block_len
        # Row r of the echelon form has its pivot (lowest set column) at pivot_col[r].
        self._rows = np.zeros((num_source, num_source), bool)
        self._data = np.zeros((num_source, block_len), np.uint8)
        self._has_pivot = np.zeros(num_source, bool)
        self.received: set[int] = set()

    @property
    def rank(self) -> int:
        return int(self._has_pivot.sum())

    @property
    def complete(self) -> bool:
        return self.rank == self.num_source

    def add(self, index: int, payload: np.ndarray) -> bool:
        """Add packet ``index``; True if it raised the rank (brought new information)."""
        if index in self.received or self.complete:
            return False
        if payload.shape != (self.block_len,):
            raise ValueError(f"payload must have {self.block_len} bytes, got {payload.shape}")
        self.received.add(index)
        row = coefficients(self.code_id, index, self.num_source).copy()
        data = payload.astype(np.uint8).copy()
        while True:
            hits = np.flatnonzero(row & self._has_pivot)
            if not hits.size:
                break
            col = int(hits[0])
            row ^= self._rows[col]
            data ^= self._data[col]
        if not row.any():
            return False
        col = int(np.flatnonzero(row)[0])
        self._rows[col], self._data[col], self._has_pivot[col] = row, data, True
        return True

    def missing(self) -> list[int]:
        """Source blocks not known yet (no pivot in their column)."""
        return np.flatnonzero(~self._has_pivot).tolist()

    def decode(self) -> np.ndarray:
        """Source blocks uint8 ``[K, B]``; requires :attr:`complete`."""
        if not self.complete:
            raise ValueError(f"rank {self.rank} of {self.num_source}: more packets needed")
        rows, data = self._rows.copy(), self._data.copy()
        # Back substitution: clear every column above-right of each pivot, last pivot first.
        for col in range(self.num_source - 1, -1, -1):
            users = np.flatnonzero(rows[:col, col])
            if users.size:
                rows[users] ^= rows[col]
                data[users] ^= data[col]
        return data
