"""Cyclic redundancy checks of 3GPP TS 38.212 §5.1, batched over torch tensors.

Polynomials (top bit implied in the hex value): CRC24A 0x864CFB, CRC24B 0x800063,
CRC24C 0xB2B117, CRC16 0x1021, CRC11 0xE21, CRC6 0x21. Zero initial state, no final XOR,
bits MSB first: the parity bits are the remainder of ``a(x) x^L`` divided by ``g(x)``, with
the first input bit the highest power.

Implementation: a CRC with zero initial state and no final XOR is linear over GF(2), so the
parity of ``k`` bits is ``bits @ G_k mod 2`` with a ``[k, L]`` generator matrix (row ``i`` is
the CRC of the unit vector ``e_i``). ``G_k`` is built once per ``(k, device)`` and cached; the
product runs as one float32 matmul (exact: sums stay below 2^24), on CPU or CUDA.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["CRC", "CRC_POLYNOMIALS"]

#: name -> (length L, generator polynomial without its x^L term)
CRC_POLYNOMIALS: dict[str, tuple[int, int]] = {
    "24A": (24, 0x864CFB),
    "24B": (24, 0x800063),
    "24C": (24, 0xB2B117),
    "16": (16, 0x1021),
    "11": (11, 0xE21),
    "6": (6, 0x21),
}
_BIT_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_MAX_K = 1 << 24  # float32 matmul sums are exact below 2^24


def _normalize_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"CRC name must be a str such as '24A', got {type(name).__name__}")
    key = name.upper().replace("-", "").replace("_", "").replace(" ", "")
    key = key.removeprefix("CRC")
    if key not in CRC_POLYNOMIALS:
        raise ValueError(f"unknown CRC {name!r}; use one of {list(CRC_POLYNOMIALS)}")
    return key


@functools.lru_cache(maxsize=64)
def _generator_matrix_cpu(poly: int, length: int, k: int) -> torch.Tensor:
    """``[k, L]`` float32 matrix whose row ``i`` is the CRC of the unit vector ``e_i``."""
    # Row i is x^(L + k - 1 - i) mod g(x): step the remainder x^L, x^(L+1), ... and store
    # them in reverse row order.
    mask = (1 << length) - 1
    rems = []
    r = poly  # x^L mod g(x)
    for _ in range(k):
        rems.append(r)
        r = ((r << 1) & mask) ^ (poly if r >> (length - 1) & 1 else 0)
    rows = torch.tensor(rems[::-1], dtype=torch.int64).reshape(k, 1)
    shifts = torch.arange(length - 1, -1, -1, dtype=torch.int64)
    return ((rows >> shifts) & 1).to(torch.float32)


class CRC:
    """CRC of TS 38.212 §5.1 on batched bit tensors.

    Args:
        name: ``"24A"``, ``"24B"``, ``"24C"``, ``"16"``, ``"11"`` or ``"6"``; also accepted as
            ``"crc24a"``, ``"CRC24A"``, ``"CRC-24A"``.

    Bits are 0/1 tensors (uint8, bool or integer) on CPU or CUDA; results are uint8 / bool on
    the input's device.
    """

    def __init__(self, name: str):
        self.name = _normalize_name(name)
        self.length, self.poly = CRC_POLYNOMIALS[self.name]
        self._g_cache: dict[tuple[int, str], torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"CRC({self.name!r})"

    def generator_matrix(self, k: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """float32 ``[k, L]`` matrix ``G_k`` with ``crc(bits) = bits @ G_k mod 2``."""
        key = (k, str(device))
        g = self._g_cache.get(key)
        if g is None:
            if len(self._g_cache) >= 16:  # keep memory bounded when many k are used
                self._g_cache.clear()
            g = _generator_matrix_cpu(self.poly, self.length, k).to(device)
            self._g_cache[key] = g
        return g

    def _check(self, bits: torch.Tensor, min_len: int) -> None:
        if not isinstance(bits, torch.Tensor):
            raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
        if bits.dtype not in _BIT_DTYPES:
            raise TypeError(f"bits must be a uint8/bool/integer tensor of 0/1, got {bits.dtype}")
        if bits.dim() < 1 or bits.shape[-1] < min_len:
            raise ValueError(
                f"bits must have a last axis of at least {min_len} bits, got {tuple(bits.shape)}"
            )
        if bits.shape[-1] >= _MAX_K:
            raise ValueError(f"at most {_MAX_K - 1} bits per CRC")
        if bits.dtype != torch.bool and bits.numel() and _outside_01(bits):
            raise ValueError("bits must contain only 0 and 1")

    def _parity(self, bits: torch.Tensor) -> torch.Tensor:
        k = bits.shape[-1]
        if k == 0:  # the CRC of no bits is the zero state
            return torch.zeros(*bits.shape[:-1], self.length, dtype=torch.uint8, device=bits.device)
        g = self.generator_matrix(k, bits.device)
        flat = bits.reshape(-1, k).to(torch.float32)
        parity = torch.remainder(flat @ g, 2.0).to(torch.uint8)
        return parity.reshape(*bits.shape[:-1], self.length)

    def compute(self, bits: torch.Tensor) -> torch.Tensor:
        """CRC bits uint8 ``[..., L]`` of ``bits [..., k]``."""
        self._check(bits, 0)
        return self._parity(bits)

    def attach(self, bits: torch.Tensor) -> torch.Tensor:
        """``bits [..., k]`` followed by their CRC: uint8 ``[..., k + L]``."""
        self._check(bits, 0)
        return torch.cat([bits.to(torch.uint8), self._parity(bits)], dim=-1)

    def check(self, bits: torch.Tensor) -> torch.Tensor:
        """bool ``[...]``: True where ``bits [..., k + L]`` carry a valid CRC."""
        self._check(bits, self.length)
        k = bits.shape[-1] - self.length
        parity = self._parity(bits[..., :k])
        return (parity == bits[..., k:].to(torch.uint8)).all(dim=-1)


def _outside_01(bits: torch.Tensor) -> bool:
    """True if an integer tensor holds a value other than 0 and 1 (one min/max pass)."""
    low, high = torch.aminmax(bits)
    return bool(low < 0) or bool(high > 1)
