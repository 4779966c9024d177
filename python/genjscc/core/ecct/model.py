"""The Error Correction Code Transformer (ECCT, Choukroun and Wolf, NeurIPS 2022).

The model decodes a binary linear block code given by its parity-check matrix ``H`` (``m x n``,
redundant rows allowed and used). Its ``n + m`` input tokens are

* the ``n`` reliabilities ``|llr_i|`` of the received bits, and
* the ``m`` bipolar syndrome values ``1 - 2 s_j`` of their hard decisions (``s = H b mod 2``,
  ``b = (llr < 0)``),

each multiplying one learned embedding vector of its position. ``N`` pre-LayerNorm encoder
layers follow; their self-attention is masked by the code (:func:`ecct_attention_mask`): two
bits that share a check attend each other, a check attends its bits and its bits attend it,
every token attends itself, nothing else. A final LayerNorm, a per-token linear map to one value
and a linear map from the ``n + m`` tokens to ``n`` outputs give the *flip logits*: the logit
that the multiplicative noise of bit ``i`` is negative, i.e. that the hard decision of bit ``i``
is wrong. The decoded bit is ``(llr_i < 0) XOR (flip_logit_i > 0)``.

Input convention (one for training and decoding): the model reads **LLRs**
``llr = ln P(b=0|y)/P(b=1|y)`` (docs/conventions.md). For BPSK over AWGN with noise variance
``noise_var`` per real dimension, ``llr = 2 y / noise_var``: the paper's ``|y|`` is replaced by
``|llr|``, which also tells the model the noise level. :mod:`genjscc.train.ecct` trains on
exactly these LLRs, and the BER engine hands the decoder the exact demapper LLRs, so no noise
variance has to be passed around. Feeding ``y`` instead of LLRs gives wrong results.

Attention uses :func:`torch.nn.functional.scaled_dot_product_attention` with one precomputed
additive float mask (0 allowed, ``-inf`` masked), which runs the fused kernels on CPU and CUDA.

Variant ``ECCTConfig(arch="crossmpt")`` (CrossMPT, Park et al., ICLR 2025): the same tokens,
embeddings, output head and training, but no self-attention over all ``n + m`` tokens. Each
layer updates the bit tokens by cross-attention to the check tokens (bit ``i`` reads the checks
with ``H[j, i] = 1``), then the check tokens by cross-attention to the updated bit tokens
(check ``j`` reads its bits), like one round of message passing; both halves share the layer's
weights, queries are layer-normalized, keys and values are not. Its attention maps are
``n x m`` and ``m x n`` (the nonzeros of ``H``) instead of ``(n + m)^2``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genjscc.core.weights_file import WeightsFormat, read_weights, save_weights, state_tensors

__all__ = [
    "ECCT",
    "ECCTConfig",
    "ECCTDecoder",
    "ecct_attention_mask",
    "load_ecct",
    "save_ecct",
]


def _check_h(H: Any) -> np.ndarray:
    h = np.asarray(H.detach().cpu().numpy() if isinstance(H, torch.Tensor) else H)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"H must be a non-empty 2-D 0/1 matrix (m x n), got shape {h.shape}")
    if not np.isin(h, (0, 1)).all():
        raise ValueError("H must contain only 0 and 1")
    return h.astype(np.uint8)


def ecct_attention_mask(H: Any) -> torch.Tensor:
    """Boolean attention mask ``[n + m, n + m]`` of ECCT from ``H`` (``True`` = may attend).

    Tokens ``0..n-1`` are the bits, ``n..n+m-1`` the checks (rows of ``H``, redundant rows
    included). Bits ``i`` and ``k`` attend each other when some row of ``H`` has a 1 in both
    columns; check ``j`` and bit ``i`` attend each other when ``H[j, i] = 1``; every token
    attends itself. Checks do not attend other checks.
    """
    h = torch.as_tensor(_check_h(H), dtype=torch.float32)
    m, n = h.shape
    mask = torch.zeros(n + m, n + m, dtype=torch.bool)
    mask[:n, :n] = (h.T @ h) > 0  # bits sharing at least one check
    mask[n:, :n] = h > 0
    mask[:n, n:] = h.T > 0
    mask |= torch.eye(n + m, dtype=torch.bool)
    return mask


ARCH_NAMES = {"ecct": "ECCT", "crossmpt": "CrossMPT"}  # ECCTConfig.arch -> display name
ARCHS = tuple(ARCH_NAMES)


def _additive(allowed: torch.Tensor) -> torch.Tensor:
    """Additive float attention mask: 0 where allowed, ``-inf`` elsewhere."""
    return torch.zeros(allowed.shape).masked_fill(~allowed, -math.inf)


@dataclass(frozen=True)
class ECCTConfig:
    """Hyper-parameters of :class:`ECCT` (the code itself comes from ``H``).

    Attributes:
        num_layers: encoder layers ``N`` (paper: 2, 6 or 10).
        d_model: token width ``d`` (paper: 32, 64 or 128).
        num_heads: attention heads (paper: 8); must divide ``d_model``.
        ffn_mult: feed-forward width as a multiple of ``d_model`` (paper: 4).
        dropout: dropout in attention output and feed-forward (paper: 0).
        arch: ``"ecct"`` (masked self-attention, the published ECCT) or ``"crossmpt"``
            (bit/check cross-attention, see the module docstring).
    """

    num_layers: int = 2
    d_model: int = 32
    num_heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.0
    arch: str = "ecct"

    def __post_init__(self) -> None:
        for name in ("num_layers", "d_model", "num_heads", "ffn_mult"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")


class _EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer encoder layer with an additive attention mask."""

    def __init__(self, cfg: ECCTConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.num_heads = cfg.num_heads
        self.dropout = cfg.dropout
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_mult * d), nn.GELU(),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_mult * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                memory: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention of ``x`` (``memory`` None) or cross-attention of ``x`` to ``memory``
        (CrossMPT: keys and values from ``memory`` as it is, not layer-normalized)."""
        b, length, d = x.shape
        heads, d_head = self.num_heads, d // self.num_heads
        if memory is None:
            qkv = self.qkv(self.norm1(x)).view(b, length, 3, heads, d_head)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, L, d_head]
        else:
            w_q, w_kv = self.qkv.weight.split((d, 2 * d))
            b_q, b_kv = self.qkv.bias.split((d, 2 * d))
            q = F.linear(self.norm1(x), w_q, b_q).view(b, length, heads, d_head).transpose(1, 2)
            kv = F.linear(memory, w_kv, b_kv).view(b, memory.shape[1], 2, heads, d_head)
            k, v = kv.permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ffn(self.norm2(x)))


class ECCT(nn.Module):
    """ECCT for the code of ``H``: ``llr [..., n] -> flip logits [..., n]``.

    Args:
        H: parity-check matrix ``(m, n)``, 0/1 (numpy or torch); redundant rows are kept.
        config: :class:`ECCTConfig` (default: the paper's smallest, N=2, d=32, 8 heads).

    ``forward(llr)`` returns the logits that each hard decision ``(llr < 0)`` is wrong;
    :meth:`decide` turns them into bits. ``H`` is a buffer, saved with the weights.
    """

    def __init__(self, H: Any, config: ECCTConfig | None = None) -> None:
        super().__init__()
        h = _check_h(H)
        self.config = config or ECCTConfig()
        self.m, self.n = h.shape
        d = self.config.d_model
        self.register_buffer("H", torch.as_tensor(h, dtype=torch.float32))
        if self.config.arch == "crossmpt":
            if not (h.any(axis=0).all() and h.any(axis=1).all()):
                raise ValueError("arch 'crossmpt' needs every bit in a check and every check "
                                 "with a bit: H has an all-zero row or column")
            allowed = torch.as_tensor(h.T > 0)  # [n, m]: bit i reads check j
            self.register_buffer("check_mask", _additive(allowed.T), persistent=False)
        else:
            allowed = ecct_attention_mask(h)
        self.register_buffer("attn_mask", _additive(allowed), persistent=False)
        self.embedding = nn.Parameter(torch.randn(self.n + self.m, d))
        self.layers = nn.ModuleList(_EncoderLayer(self.config)
                                    for _ in range(self.config.num_layers))
        self.final_norm = nn.LayerNorm(d)
        self.token_head = nn.Linear(d, 1)
        self.out = nn.Linear(self.n + self.m, self.n)
        self._init_weights()

    def _init_weights(self) -> None:
        # Xavier-uniform on the matrices, as in the authors' code.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def inputs(self, llr: torch.Tensor) -> torch.Tensor:
        """Token scalars ``[..., n + m]``: ``|llr|`` then the bipolar syndrome ``1 - 2 s``."""
        hard = (llr < 0).to(self.H.dtype)
        syndrome = torch.remainder(hard @ self.H.T, 2.0)
        return torch.cat([llr.abs(), 1.0 - 2.0 * syndrome], dim=-1)

    def forward(self, llr: torch.Tensor) -> torch.Tensor:
        """Flip logits ``[..., n]`` of ``llr [..., n]`` (float, finite; not checked here)."""
        lead = llr.shape[:-1]
        tokens = self.inputs(llr.reshape(-1, self.n).to(self.H.dtype))
        x = tokens.unsqueeze(-1) * self.embedding  # [B, n + m, d]
        mask = self.attn_mask.to(x.dtype)
        if self.config.arch == "crossmpt":
            bits, checks = x[:, :self.n], x[:, self.n:]
            check_mask = self.check_mask.to(x.dtype)
            for layer in self.layers:
                bits = layer(bits, mask, memory=checks)
                checks = layer(checks, check_mask, memory=bits)
            x = torch.cat([bits, checks], dim=1)
        else:
            for layer in self.layers:
                x = layer(x, mask)
        z = self.out(self.token_head(self.final_norm(x)).squeeze(-1))
        return z.reshape(*lead, self.n)

    @staticmethod
    def decide(llr: torch.Tensor, flip_logits: torch.Tensor) -> torch.Tensor:
        """Hard bits ``uint8 [..., n]``: ``(llr < 0) XOR (flip_logits > 0)``."""
        return ((llr < 0) ^ (flip_logits > 0)).to(torch.uint8)

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------- files


WEIGHTS_FORMAT = WeightsFormat("ecct", "ECCT", {"format": ("genjscc-ecct-1",)})
"""How :func:`save_ecct` tags its files."""


def save_ecct(model: ECCT, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``model`` (weights, ``H`` and config in the header metadata) as safetensors."""
    save_weights(state_tensors(model), path, WEIGHTS_FORMAT, model.config, metadata)


def load_ecct(path: str | Path, map_location: str | torch.device = "cpu") -> ECCT:
    """Read a model written by :func:`save_ecct` (eval mode, on ``map_location``); ZooError
    if there is no such file or it is not one."""
    meta, state = read_weights(path, WEIGHTS_FORMAT)
    model = ECCT(state["H"].to(torch.uint8).numpy(), ECCTConfig(**json.loads(meta["config"])))
    model.load_state_dict(state)
    return model.to(map_location).eval()


def load_ecct_model(ref: Any, device: str | torch.device = "cpu") -> ECCT:
    """The ``ecct`` loader of :data:`genjscc.zoo.KINDS`: :func:`load_ecct` of ``ref.path``."""
    return load_ecct(ref.path, map_location=device)


# ---------------------------------------------------------------------------------- decoder


class ECCTDecoder:
    """A trained :class:`ECCT` behind the decoder interface: ``llr [..., n] -> bits [..., n]``.

    Args:
        model: the trained model (its ``H`` fixes ``n``).
        device: where the model runs (default: each input's device; the model is moved there).
        batch_size: words per forward pass, to bound memory on large batches.
        syndrome_exit: words whose hard decisions ``(llr < 0)`` already satisfy every parity
            check are returned as those hard decisions without running the model (as BP's early
            stop does before its first iteration); only the others go through the network.
            Off by default (the model cards measure the network on every word). The output can
            differ from the full decoder's only on skipped words where the network would flip
            bits of a valid codeword (tests/test_text_speed.py, docs/text.md), or if the
            network's float rounding depended on the batch it runs in (not seen on CPU: chunks
            of 32 to 2048 words gave the same logits here).

    Input: LLRs ``ln P(b=0)/P(b=1)`` (the convention the model was trained with, see the module
    docstring), float, finite, last dimension ``n``. Output: ``uint8`` bits on the input's
    device, the whole codeword estimate. Wrong shapes or NaN/inf raise ``ValueError``.
    """

    def __init__(self, model: ECCT, device: str | torch.device | None = None,
                 batch_size: int = 4096, syndrome_exit: bool = False) -> None:
        if not isinstance(model, ECCT):
            raise TypeError(f"model must be an ECCT, got {type(model).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model.eval()
        self.n = model.n
        self.device = torch.device(device) if device is not None else None
        self.batch_size = batch_size
        self.syndrome_exit = bool(syndrome_exit)

    def _check(self, llr: Any) -> torch.Tensor:
        if isinstance(llr, np.ndarray):
            llr = torch.from_numpy(llr)
        if not isinstance(llr, torch.Tensor):
            raise TypeError(f"llr must be a torch.Tensor, got {type(llr).__name__}")
        if llr.is_complex() or not llr.is_floating_point():
            raise TypeError(f"llr must be a real floating-point tensor, got dtype {llr.dtype}")
        if llr.ndim == 0 or llr.shape[-1] != self.n:
            raise ValueError(f"llr must have shape [..., n] with n = {self.n} (the code of this "
                             f"ECCT model), got {tuple(llr.shape)}")
        if not bool(torch.isfinite(llr).all()):
            raise ValueError("llr contains NaN or inf; clip LLRs to a finite range (and replace "
                             "erasures by 0) before ECCT decoding")
        return llr

    @torch.inference_mode()
    def __call__(self, llr: torch.Tensor) -> torch.Tensor:
        llr = self._check(llr)
        device = self.device or llr.device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        flat = llr.reshape(-1, self.n).to(device, torch.float32)
        if not self.syndrome_exit:
            return self._network(flat).reshape(llr.shape).to(llr.device)
        hard = (flat < 0).to(torch.uint8)
        bad = torch.remainder(hard.to(self.model.H.dtype) @ self.model.H.T, 2.0).any(-1)
        hard[bad] = self._network(flat[bad])
        return hard.reshape(llr.shape).to(llr.device)

    def _network(self, flat: torch.Tensor) -> torch.Tensor:
        """Bits ``uint8 [B, n]`` of the network on LLRs ``[B, n]``, in chunks of batch_size."""
        out = [self.model.decide(chunk, self.model(chunk))
               for chunk in flat.split(self.batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.n, dtype=torch.uint8,
                                                       device=flat.device)

    def __repr__(self) -> str:
        c = self.model.config
        return (f"ECCTDecoder(n={self.n}, m={self.model.m}, layers={c.num_layers}, "
                f"d_model={c.d_model}, syndrome_exit={self.syndrome_exit})")
