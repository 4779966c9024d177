"""Packet-loss channels: a general hidden-Markov model and its two-state Gilbert-Elliott case.

A K-state Markov chain moves once per packet with ``transition_matrix[i, j] = P(next state j |
state i)``; in state ``k`` a packet is lost with probability ``loss_prob[k]``. Sequences start
from the stationary distribution, so every packet has the long-run loss rate.
Masks use ``True = lost``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["LOSS_TRACES", "GilbertElliott", "MarkovPacketLoss", "burst_lengths", "independent_loss",
           "loss_trace"]


class _Uniforms:
    """Uniform(0, 1) draws from a torch generator, fetched in chunks, consumed one at a time."""

    def __init__(self, generator: torch.Generator | None, chunk: int):
        self._gen = generator
        self._device = generator.device if generator is not None else "cpu"
        self._chunk = max(int(chunk), 64)
        self._buf: list[float] = []
        self._pos = 0

    def next(self) -> float:
        if self._pos == len(self._buf):
            draws = torch.rand(
                self._chunk, dtype=torch.float64, device=self._device, generator=self._gen
            )
            self._buf = draws.cpu().tolist()
            self._pos = 0
        u = self._buf[self._pos]
        self._pos += 1
        return u


class MarkovPacketLoss:
    """General K-state Markov packet-loss model.

    Args:
        transition_matrix: ``[K, K]`` row-stochastic matrix (entries in [0, 1], rows sum to 1);
            the chain must have a unique stationary distribution.
        loss_prob: ``[K]`` probability that a packet sent in each state is lost.

    ``sample(num_packets, generator=None)`` returns a ``torch.bool`` mask ``[num_packets]``
    (True = lost) starting from the stationary distribution.
    """

    def __init__(self, transition_matrix: Sequence | np.ndarray | torch.Tensor, loss_prob):
        p = _as_float64(transition_matrix, "transition_matrix")
        loss = _as_float64(loss_prob, "loss_prob")
        if p.ndim != 2 or p.shape[0] != p.shape[1] or p.shape[0] < 1:
            raise ValueError(f"transition_matrix must be square [K, K], got shape {p.shape}")
        if loss.shape != (p.shape[0],):
            raise ValueError(f"loss_prob must have shape ({p.shape[0]},), got {loss.shape}")
        if np.any(~((p >= 0) & (p <= 1))):
            raise ValueError("transition_matrix entries must be probabilities in [0, 1]")
        if np.any(np.abs(p.sum(axis=1) - 1.0) > 1e-6):
            raise ValueError(f"transition_matrix rows must sum to 1, got {p.sum(axis=1)}")
        if np.any(~((loss >= 0) & (loss <= 1))):
            raise ValueError("loss_prob entries must be probabilities in [0, 1]")
        self._p = p / p.sum(axis=1, keepdims=True)
        self._loss = loss
        self._pi = _stationary(self._p)

    @property
    def num_states(self) -> int:
        return self._p.shape[0]

    @property
    def transition_matrix(self) -> torch.Tensor:
        """``[K, K]`` float64 transition matrix."""
        return torch.from_numpy(self._p.copy())

    @property
    def loss_prob(self) -> torch.Tensor:
        """``[K]`` float64 loss probability per state."""
        return torch.from_numpy(self._loss.copy())

    @property
    def stationary_distribution(self) -> torch.Tensor:
        """``[K]`` float64 stationary state distribution."""
        return torch.from_numpy(self._pi.copy())

    @property
    def loss_rate(self) -> float:
        """Long-run fraction of lost packets, ``sum_k pi_k loss_prob_k``."""
        return float(self._pi @ self._loss)

    @property
    def mean_burst_length(self) -> float:
        """Long-run mean length of a run of consecutive losses.

        ``P(lost) / P(received, then lost)`` (lost packets per burst start). ``inf`` when
        every packet is lost, ``nan`` when none is (no bursts).
        """
        rate = self.loss_rate
        if rate <= 0.0:
            return math.nan
        # P(packet t received and packet t+1 lost), summed over the state pair (i, j).
        starts = float((self._pi * (1.0 - self._loss)) @ self._p @ self._loss)
        return math.inf if starts <= 0.0 else rate / starts

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(transition_matrix={self._p.tolist()}, "
            f"loss_prob={self._loss.tolist()})"
        )

    def sample_states(
        self, num_packets: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample the hidden state sequence, int64 ``[num_packets]``, from the stationary start."""
        if isinstance(num_packets, bool) or not isinstance(num_packets, int) or num_packets < 0:
            raise ValueError(f"num_packets must be a non-negative int, got {num_packets!r}")
        states = np.empty(num_packets, dtype=np.int64)
        if num_packets == 0:
            return torch.from_numpy(states)
        # Jump by sojourns: geometric run lengths, then the next state from the off-diagonal
        # row; one Python step per state change instead of one per packet.
        stay = np.diag(self._p)
        leave_cum = np.cumsum(self._p - np.diag(stay), axis=1)
        expected_jumps = num_packets * float(self._pi @ (1.0 - stay)) + 2
        uniforms = _Uniforms(generator, chunk=min(2 * expected_jumps + 64, 1 << 20))
        state = _pick(np.cumsum(self._pi), uniforms.next())
        pos = 0
        while pos < num_packets:
            p_stay = stay[state]
            if p_stay >= 1.0:
                run = num_packets - pos
            elif p_stay <= 0.0:
                run = 1
            else:
                run = 1 + int(math.log1p(-uniforms.next()) / math.log(p_stay))
            states[pos : pos + run] = state
            pos += run
            if pos < num_packets:
                state = _pick(leave_cum[state], uniforms.next() * leave_cum[state, -1])
        return torch.from_numpy(states)

    def sample(
        self,
        num_packets: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Loss mask ``torch.bool [num_packets]`` (True = lost), on ``device`` (default CPU)."""
        states = self.sample_states(num_packets, generator)
        gen_device = generator.device if generator is not None else "cpu"
        u = torch.rand(num_packets, dtype=torch.float64, device=gen_device, generator=generator)
        lost = u.cpu() < torch.from_numpy(self._loss)[states]
        return lost.to(device) if device is not None else lost


class GilbertElliott(MarkovPacketLoss):
    """Two-state (good, bad) Markov packet loss.

    Args:
        p_good_to_bad: per-packet probability of moving from the good to the bad state.
        p_bad_to_good: per-packet probability of moving from the bad to the good state.
        loss_good: loss probability in the good state (0 for the Gilbert model).
        loss_bad: loss probability in the bad state (1 for the Gilbert model).

    With ``loss_good = 0`` and ``loss_bad = 1`` the long-run loss rate is
    ``p_gb / (p_gb + p_bg)`` and the mean burst length ``1 / p_bg``.
    """

    def __init__(
        self,
        p_good_to_bad: float,
        p_bad_to_good: float,
        loss_good: float = 0.0,
        loss_bad: float = 1.0,
    ):
        for name, v in (("p_good_to_bad", p_good_to_bad), ("p_bad_to_good", p_bad_to_good)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
        p_gb, p_bg = float(p_good_to_bad), float(p_bad_to_good)
        super().__init__([[1.0 - p_gb, p_gb], [p_bg, 1.0 - p_bg]], [loss_good, loss_bad])
        self.p_good_to_bad = p_gb
        self.p_bad_to_good = p_bg

    @classmethod
    def from_loss_rate(cls, loss_rate: float, mean_burst_length: float) -> GilbertElliott:
        """Gilbert model (lossless good, lossy bad state) with the given long-run loss rate and
        mean burst length: ``p_bg = 1 / mean_burst_length``,
        ``p_gb = loss_rate * p_bg / (1 - loss_rate)``."""
        if not 0.0 <= loss_rate < 1.0:
            raise ValueError(f"loss_rate must be in [0, 1), got {loss_rate!r}")
        if not mean_burst_length >= 1.0:
            raise ValueError(f"mean_burst_length must be >= 1 packet, got {mean_burst_length!r}")
        p_bg = 1.0 / mean_burst_length
        p_gb = loss_rate * p_bg / (1.0 - loss_rate)
        if p_gb > 1.0:
            raise ValueError(
                f"loss_rate {loss_rate} needs mean_burst_length >= "
                f"{loss_rate / (1.0 - loss_rate):.4g} (got {mean_burst_length})"
            )
        return cls(p_gb, p_bg)

    def __repr__(self) -> str:
        return (
            f"GilbertElliott(p_good_to_bad={self.p_good_to_bad}, "
            f"p_bad_to_good={self.p_bad_to_good}, loss_good={self._loss[0]}, "
            f"loss_bad={self._loss[1]})"
        )


def burst_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Lengths (int64, in order) of the runs of ``True`` (losses) along the last axis.

    Runs never continue across rows of a multi-dimensional mask; rows are scanned in order.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a torch.bool tensor (True = lost)")
    if mask.dim() == 0:
        mask = mask.reshape(1)
    rows = mask.reshape(-1, mask.shape[-1]).to(torch.int8)
    # Pad each row with a received packet on both sides so every run has a start and an end.
    padded = torch.nn.functional.pad(rows, (1, 1)).reshape(-1)
    edges = torch.diff(padded)
    starts = torch.nonzero(edges == 1).squeeze(-1)
    ends = torch.nonzero(edges == -1).squeeze(-1)
    return ends - starts


def _as_float64(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric, got {x!r}") from err


def _pick(cum: np.ndarray, u: float) -> int:
    """Index of the first cumulative weight above ``u`` (inverse-CDF sampling)."""
    return min(int(np.searchsorted(cum, u, side="right")), len(cum) - 1)


def _stationary(p: np.ndarray) -> np.ndarray:
    """Unique stationary distribution of a row-stochastic matrix; ValueError if not unique."""
    k = p.shape[0]
    a = p.T - np.eye(k)
    if np.linalg.matrix_rank(a, tol=1e-10) != k - 1:
        raise ValueError(
            "the Markov chain has no unique stationary distribution (it has more than one "
            "closed class of states); make it irreducible"
        )
    # Solve (P^T - I) pi = 0 with sum(pi) = 1 as a least-squares system.
    lhs = np.vstack([a, np.ones((1, k))])
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    pi, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    # Round-off leaves ~1e-16 on transient states; zero it so e.g. a lossless chain has loss 0.
    pi = np.where(pi < 1e-12, 0.0, pi)
    return pi / pi.sum()


def independent_loss(loss_rate: float) -> MarkovPacketLoss:
    """Independent (Bernoulli) packet loss at ``loss_rate`` in [0, 1]: a one-state chain."""
    if not 0.0 <= loss_rate <= 1.0:
        raise ValueError(f"loss_rate must be in [0, 1], got {loss_rate!r}")
    return MarkovPacketLoss([[1.0]], [loss_rate])


LOSS_TRACES: dict[str, tuple[float, float]] = {
    "EP1": (0.0021, 6.5),
    "EP2": (0.0311, 1.59),
    "EP3": (0.0645, 5.0),
    "EP4": (0.1383, 1.69),
    "EP5": (0.2143, 10.0),
    "EP6": (0.3240, 2.71),
}
"""The six packet-loss traces of the ResiComp evaluation as (mean loss rate, mean burst
length in packets). Its published 3-state parameter sets are not all valid Markov chains
(EP3 and EP5), so each trace is rebuilt as the two-state Gilbert model with these statistics
(:func:`loss_trace`)."""


def loss_trace(name: str) -> GilbertElliott:
    """The Gilbert model of trace ``name`` (``EP1`` .. ``EP6``, any case) of :data:`LOSS_TRACES`."""
    key = str(name).upper()
    if key not in LOSS_TRACES:
        raise ValueError(f"unknown loss trace {name!r}; choose one of {', '.join(LOSS_TRACES)}")
    return GilbertElliott.from_loss_rate(*LOSS_TRACES[key])
