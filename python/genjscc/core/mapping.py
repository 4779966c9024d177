"""Gray-mapped BPSK, QPSK and square 16/64/256-QAM with exact and max-log LLR demapping.

Conventions (docs/conventions.md):

* Unit average energy ``E|x|^2 = 1``; symbol index ``i`` carries the bits of ``i`` written MSB
  first.
* BPSK: bit 0 -> +1, bit 1 -> -1.
* Square M-QAM (M = L^2): the first ``m = log2(L)`` bits choose the in-phase level, the last
  ``m`` bits the quadrature level, each with the 3GPP TS 38.211 §5.1 per-axis Gray labelling
  ``a = (1-2c0) (2^(m-1) - (1-2c1) (2^(m-2) - ... (2 - (1-2c_{m-1}))))`` (odd integers,
  then scaled by ``1/sqrt(2 (M-1) / 3)``). The first bit of an axis is its sign (bit 0 -> +),
  so QPSK is ``((1-2b0) + j (1-2b1)) / sqrt(2)``. Neighbouring points differ in one bit.
* LLR = ln P(b=0 | y) / P(b=1 | y) with equiprobable symbols and complex noise ``CN(0, N0)``
  (N0/2 per real dimension); hard decision ``b = (llr < 0)``.

Demapping works per axis: the Gaussian likelihood and the labelling both factor into an
in-phase and a quadrature part, so each bit's LLR involves only the ``L`` levels of its own
axis (``L = sqrt(M)``), never all ``M`` points. This is exact, not an approximation.

Max-log error bound: for each bit, ``LLR = LSE(S0) - LSE(S1)`` where ``S0``/``S1`` are the
metrics of the ``L/2`` levels of the bit's axis with the bit 0/1, and max-log replaces each
log-sum-exp by its maximum. Since ``max(S) <= LSE(S) <= max(S) + ln |S|``, it follows that
``|LLR_exact - LLR_maxlog| <= ln(L/2) = ln(sqrt(M)/2)``, which is tighter than the
``ln(M/2)`` bound of a demapper over all ``M`` points (the per-axis and full max-log LLRs are
equal). For BPSK and QPSK the max-log LLR is exact.
"""

from __future__ import annotations

import functools
import math

import torch

from genjscc.core.channel.awgn import as_noise_var

__all__ = ["MODULATIONS", "Constellation", "constellation"]

MODULATIONS: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
_NAME_BY_BPS = {bps: name for name, bps in MODULATIONS.items()}
_ALIASES = {"4qam": "qpsk", "qam4": "qpsk", "qam16": "16qam", "qam64": "64qam", "qam256": "256qam"}
_BIT_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
# Symbols per demapping chunk: bounds memory to about chunk * L * m * 8 bytes per axis.
_DEMAP_CHUNK = 1 << 16
_METHODS = ("exact", "maxlog")


def _resolve(modulation: str | int) -> tuple[str, int]:
    """Canonical name and bits per symbol of a modulation name or bits_per_symbol int."""
    if isinstance(modulation, bool):
        raise TypeError("modulation must be a name or bits_per_symbol int, not bool")
    if isinstance(modulation, int):
        if modulation not in _NAME_BY_BPS:
            raise ValueError(
                f"bits_per_symbol must be one of {sorted(_NAME_BY_BPS)}, got {modulation}"
            )
        return _NAME_BY_BPS[modulation], modulation
    if not isinstance(modulation, str):
        raise TypeError(f"modulation must be a str or int, got {type(modulation).__name__}")
    key = modulation.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in MODULATIONS:
        raise ValueError(f"unknown modulation {modulation!r}; use one of {list(MODULATIONS)}")
    return key, MODULATIONS[key]


def _axis_amplitude(label: int, m: int) -> int:
    """Odd-integer PAM amplitude of an ``m``-bit axis label (3GPP Gray labelling)."""
    bits = [(label >> (m - 1 - k)) & 1 for k in range(m)]
    t = 1 - 2 * bits[m - 1]
    for k in range(m - 2, -1, -1):
        t = (1 - 2 * bits[k]) * ((1 << (m - 1 - k)) - t)
    return t


class Constellation:
    """A Gray-mapped constellation with unit average energy.

    Args:
        modulation: ``"bpsk"``, ``"qpsk"``, ``"16qam"``, ``"64qam"``, ``"256qam"``
            (case-insensitive) or the bits per symbol (1, 2, 4, 6, 8).

    Attributes:
        name, bits_per_symbol, num_points,
        points: complex64 ``[M]`` (CPU); ``points[i]`` carries the bits of ``i``, MSB first.
    """

    def __init__(self, modulation: str | int):
        self.name, self.bits_per_symbol = _resolve(modulation)
        bps = self.bits_per_symbol
        self.num_points = 1 << bps
        # Per-axis PAM: m bits and L levels per axis (BPSK: one real axis with m = 1).
        self._m = 1 if bps == 1 else bps // 2
        num_levels = 1 << self._m
        amp = torch.tensor(
            [_axis_amplitude(lab, self._m) for lab in range(num_levels)], dtype=torch.float64
        )
        scale = 1.0 if bps == 1 else 1.0 / math.sqrt(2.0 * (self.num_points - 1) / 3.0)
        self._scale = scale
        self._amp = amp * scale  # amplitude of each axis label, float64 [L]
        idx = torch.arange(self.num_points)
        if bps == 1:
            pts = torch.complex(self._amp, torch.zeros_like(self._amp))
        else:
            pts = torch.complex(self._amp[idx >> self._m], self._amp[idx & (num_levels - 1)])
        self.points = pts.to(torch.complex64)
        self._points64 = pts
        labels_bits = (torch.arange(num_levels)[:, None] >> torch.arange(self._m - 1, -1, -1)) & 1
        self._label_bits = labels_bits.to(torch.uint8)  # [L, m]
        # Labels with bit k equal to 0 / 1: [m, L/2] index tables for the per-bit LSE.
        self._idx0 = torch.stack(
            [torch.nonzero(labels_bits[:, k] == 0).squeeze(1) for k in range(self._m)]
        )
        self._idx1 = torch.stack(
            [torch.nonzero(labels_bits[:, k] == 1).squeeze(1) for k in range(self._m)]
        )
        # Hard decision: sorted level position -> label bits.
        order = torch.argsort(amp)
        self._sorted_bits = self._label_bits[order]  # [L, m]
        self._consts: dict[tuple, dict[str, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"Constellation({self.name!r})"

    # -- device constants ---------------------------------------------------------------------

    def _tables(self, device: torch.device, real_dtype: torch.dtype) -> dict[str, torch.Tensor]:
        key = (str(device), real_dtype)
        tabs = self._consts.get(key)
        if tabs is None:
            cdtype = torch.complex64 if real_dtype != torch.float64 else torch.complex128
            bps = self.bits_per_symbol
            tabs = {
                "points": self._points64.to(device=device, dtype=cdtype),
                "amp": self._amp.to(device=device, dtype=real_dtype),
                "idx01": torch.stack([self._idx0, self._idx1], dim=1).to(device),
                "sorted_bits": self._sorted_bits.to(device),
                "weights": (1 << torch.arange(bps - 1, -1, -1, dtype=torch.int32)).to(device),
                # the level of an axis' first bit = 0 (QPSK's closed-form LLR)
                "bit0_level": self._amp[self._idx0.reshape(-1)[0]].to(device=device,
                                                                     dtype=real_dtype),
            }
            self._consts[key] = tabs
        return tabs

    # -- mapping ------------------------------------------------------------------------------

    def _check_bits(self, bits: torch.Tensor) -> None:
        if not isinstance(bits, torch.Tensor):
            raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
        if bits.dtype not in _BIT_DTYPES:
            raise TypeError(
                f"bits must be a bool or integer tensor of 0/1, got {bits.dtype}; "
                "use (llr < 0) or .to(torch.uint8) first"
            )
        if bits.dim() < 1 or bits.shape[-1] % self.bits_per_symbol:
            raise ValueError(
                f"the last axis of bits ({tuple(bits.shape)}) must be a multiple of "
                f"bits_per_symbol = {self.bits_per_symbol} for {self.name}"
            )
        if bits.dtype != torch.bool and bits.numel() and _outside_01(bits):
            raise ValueError("bits must contain only 0 and 1")

    def map(self, bits: torch.Tensor) -> torch.Tensor:
        """Map bits ``[..., n * bits_per_symbol]`` (0/1, bool or integer) to complex64
        symbols ``[..., n]`` on the same device."""
        self._check_bits(bits)
        bps = self.bits_per_symbol
        tabs = self._tables(bits.device, torch.float32)
        grouped = bits.reshape(*bits.shape[:-1], bits.shape[-1] // bps, bps).to(torch.int32)
        index = (grouped * tabs["weights"]).sum(-1)
        return tabs["points"][index]

    # -- demapping ----------------------------------------------------------------------------

    def _check_y(self, y: torch.Tensor) -> None:
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        if y.dim() < 1:
            raise ValueError("y needs a last (symbol) axis")
        if y.is_complex():
            return
        if not (self.bits_per_symbol == 1 and y.is_floating_point()):
            raise TypeError(f"y must be a complex tensor for {self.name} (got {y.dtype})")

    def demap(
        self,
        y: torch.Tensor,
        noise_var: float | torch.Tensor,
        method: str = "exact",
    ) -> torch.Tensor:
        """LLRs ``ln P(b=0|y) / P(b=1|y)`` of received symbols.

        Args:
            y: complex ``[..., n]`` (BPSK also takes real ``y``, the real channel with noise
                ``N0/2`` per sample, which gives the same LLR ``4 Re(y) / N0``).
            noise_var: N0 (> 0), a float or a tensor broadcastable to ``y``, e.g. the
                per-symbol effective noise variance after equalization.
            method: ``"exact"`` (log-sum-exp over the points) or ``"maxlog"`` (max
                approximation, error at most ``ln(sqrt(M)/2)`` per bit, see module docstring).

        Returns:
            LLRs ``[..., n * bits_per_symbol]`` in the order of the mapped bits; float32 for
            complex64 / float32 ``y``, float64 for complex128 / float64 ``y``.
        """
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self._check_y(y)
        nv = as_noise_var(noise_var, y)
        if bool((nv <= 0).any()):
            raise ValueError("noise_var must be > 0 to compute LLRs")
        if self.bits_per_symbol == 1:
            # Real noise variance N0/2 on Re(y): LLR = 2 Re(y) / (N0/2); max-log is exact.
            return 4.0 * (y.real if y.is_complex() else y) / nv
        shape = y.shape
        if self._m == 1:  # QPSK: one bit per axis, levels +-a: the exact LLR is 4 a r / N0
            a0 = self._tables(y.device, nv.dtype)["bit0_level"]
            llr = torch.stack([y.real, y.imag], dim=-1) * (4.0 * a0 / nv).unsqueeze(-1)
            return llr.reshape(*shape[:-1], shape[-1] * 2)
        flat_y = y.reshape(-1)
        flat_nv = nv.expand(shape).reshape(-1)
        tabs = self._tables(y.device, flat_nv.dtype)
        out = torch.empty(flat_y.numel(), 2, self._m, dtype=flat_nv.dtype, device=y.device)
        for start in range(0, flat_y.numel(), _DEMAP_CHUNK):
            sl = slice(start, start + _DEMAP_CHUNK)
            yc, nvc = flat_y[sl], flat_nv[sl]
            out[sl, 0] = self._axis_llr(yc.real, nvc, tabs, method)
            out[sl, 1] = self._axis_llr(yc.imag, nvc, tabs, method)
        return out.reshape(*shape[:-1], shape[-1] * self.bits_per_symbol)

    @staticmethod
    def _axis_llr(
        r: torch.Tensor, nv: torch.Tensor, tabs: dict[str, torch.Tensor], method: str
    ) -> torch.Tensor:
        """LLRs ``[c, m]`` of one axis' bits from its real samples ``r [c]``."""
        idx = tabs["idx01"]  # [m, 2, L/2]: for each bit, the labels with bit 0 and with bit 1
        # ln p(r | a) = -(r - a)^2 / N0 + const (variance N0/2 per axis). Computing the squared
        # distance directly (not 2ra - a^2) keeps float32 LLRs accurate at high SNR; the levels
        # are laid out in the order of idx so one reduction serves every bit.
        dist = r.unsqueeze(-1) - tabs["amp"][idx.reshape(-1)]
        metric = dist.square_().mul_((-1.0 / nv).unsqueeze(-1)).view(-1, *idx.shape)
        per_value = torch.logsumexp(metric, -1) if method == "exact" else metric.amax(-1)
        return per_value[..., 0] - per_value[..., 1]

    def hard_decision(self, y: torch.Tensor) -> torch.Tensor:
        """Nearest-point bits (uint8 ``[..., n * bits_per_symbol]``) of symbols ``y [..., n]``.

        Equals ``(demap(y, N0, "maxlog") < 0)`` up to exact ties, for any N0 (the sign of an
        exact LLR may differ near decision boundaries: it is the bitwise MAP decision).
        """
        self._check_y(y)
        if self.bits_per_symbol == 1:
            return ((y.real if y.is_complex() else y) < 0).to(torch.uint8)
        tabs = self._tables(y.device, torch.float32)
        num_levels = 1 << self._m

        def axis_bits(r: torch.Tensor) -> torch.Tensor:
            # Levels are the odd integers -(L-1)..(L-1) times scale: position = (u + L - 1) / 2.
            pos = torch.round((r / self._scale + (num_levels - 1)) / 2)
            return tabs["sorted_bits"][pos.clamp(0, num_levels - 1).to(torch.int64)]

        bits = torch.cat([axis_bits(y.real), axis_bits(y.imag)], dim=-1)  # [..., n, bps]
        return bits.reshape(*y.shape[:-1], y.shape[-1] * self.bits_per_symbol)


@functools.cache
def _cached(name: str) -> Constellation:
    return Constellation(name)


def constellation(modulation: str | int) -> Constellation:
    """Shared (cached) :class:`Constellation` for a modulation name or bits_per_symbol."""
    return _cached(_resolve(modulation)[0])


def _outside_01(bits: torch.Tensor) -> bool:
    """True if an integer tensor holds a value other than 0 and 1 (one min/max pass)."""
    low, high = torch.aminmax(bits)
    return bool(low < 0) or bool(high > 1)
