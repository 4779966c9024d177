"""The learned parts of the loss-resilient image codec: analysis/synthesis transforms around
FSQ tokens, and the masked token transformer that conceals lost tokens.

* :class:`Analysis` maps an image ``[B, 3, H, W]`` in [0, 1] (H, W multiples of
  :attr:`ResilientConfig.patch`) to ``[B, len(levels), H/patch, W/patch]`` pre-quantization
  values; :class:`FSQ` rounds each channel to its ``levels[c]`` values (finite scalar
  quantization, Mentzer et al. 2024), giving one token in ``0 .. prod(levels) - 1`` per patch.
* :class:`Synthesis` maps normalized codes (each channel in [-1, 1]) back to an image. It also
  takes *expected* codes (a probability-weighted mean of the code vectors) where tokens were
  lost: that is the concealment.
* :class:`TokenTransformer` sees a window of ``window x window`` tokens in which some are
  masked (lost) and gives, for every position, logits over the ``prod(levels)`` codes. Larger
  grids are processed window by window (the grid is padded with masked positions).

The transformer is not in the coding path: the range coder uses a static integer frequency
table (:mod:`genjscc.core.resilient.packets`), exact by construction on every machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from genjscc.core.weights_file import WeightsFormat, read_weights, save_weights, state_tensors

FORMAT = "genjscc-resilient/1"
WEIGHTS_FORMAT = WeightsFormat("resilient", "resilient codec", {"format": (FORMAT,)})
"""How :func:`save_resilient` tags its files."""


@dataclass
class ResilientConfig:
    """Sizes of the codec. ``patch``: pixels per token side (8 or 16); ``levels``: FSQ levels
    per latent channel; ``channels``: widths of the convolutional stages; ``window``: tokens
    per transformer window side; ``dim``/``depth``/``heads``: the transformer's width, layers
    and attention heads."""

    patch: int = 8
    levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])
    channels: list[int] = field(default_factory=lambda: [48, 96, 128])
    window: int = 16
    dim: int = 128
    depth: int = 4
    heads: int = 4

    def __post_init__(self) -> None:
        if self.patch not in (8, 16):
            raise ValueError(f"patch must be 8 or 16, got {self.patch}")
        if len(self.channels) != int(math.log2(self.patch)):
            raise ValueError(f"patch {self.patch} needs {int(math.log2(self.patch))} channel "
                             f"stages, got {self.channels}")
        if not self.levels or min(self.levels) < 2:
            raise ValueError(f"levels must be integers >= 2, got {self.levels}")

    @property
    def vocab(self) -> int:
        """Number of distinct tokens, ``prod(levels)``."""
        return math.prod(self.levels)


class FSQ(nn.Module):
    """Finite scalar quantization: channel ``c`` bounded by tanh and rounded to ``levels[c]``
    integers, normalized to [-1, 1]; straight-through gradient."""

    def __init__(self, levels: list[int]) -> None:
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("half_width", torch.div(lv, 2, rounding_mode="floor"),
                             persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), 0)
        self.register_buffer("basis", basis, persistent=False)

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` -> values in (-L/2, L/2) with an even-L offset, as in FSQ."""
        lv = self._view(self.levels)
        half_l = (lv - 1) * (1 + 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Normalized quantized codes ``[B, C, h, w]`` (straight-through rounding)."""
        b = self.bound(z)
        q = b + (torch.round(b) - b).detach()
        return q / self._view(self.half_width)

    def codes_to_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """Normalized codes ``[B, C, h, w]`` -> int64 tokens ``[B, h, w]``."""
        half = self._view(self.half_width)
        digits = torch.round(codes * half).long() + half.long()
        return (digits * self._view(self.basis)).sum(1)

    def tokens_to_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """int64 tokens ``[B, h, w]`` -> normalized codes ``[B, C, h, w]``."""
        t = tokens.unsqueeze(1)
        digits = torch.div(t, self._view(self.basis), rounding_mode="floor") \
            % self._view(self.levels).long()
        return (digits - self._view(self.half_width).long()).float() / self._view(self.half_width)

    def codebook(self) -> torch.Tensor:
        """``[V, C]``: the normalized code of every token."""
        v = int(torch.prod(self.levels).item())
        return self.tokens_to_codes(torch.arange(v).view(1, v, 1))[0, :, :, 0].t()


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 3, padding=1)
        self.b = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.gelu(self.a(x)))


class Analysis(nn.Module):
    """Image ``[B, 3, H, W]`` in [0, 1] -> ``[B, C, H/patch, W/patch]`` (before FSQ)."""

    def __init__(self, config: ResilientConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for i, ch in enumerate(config.channels):
            k = 5 if i == 0 else 3
            layers += [nn.Conv2d(prev, ch, k, stride=2, padding=k // 2), nn.GELU()]
            prev = ch
        layers += [_Res(prev), nn.Conv2d(prev, len(config.levels), 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.5)


class Synthesis(nn.Module):
    """Normalized codes ``[B, C, h, w]`` -> image ``[B, 3, h*patch, w*patch]`` (not clamped)."""

    def __init__(self, config: ResilientConfig) -> None:
        super().__init__()
        chans = list(reversed(config.channels))
        layers: list[nn.Module] = [nn.Conv2d(len(config.levels), chans[0], 3, padding=1),
                                   nn.GELU(), _Res(chans[0])]
        for i, ch in enumerate(chans):
            out = chans[i + 1] if i + 1 < len(chans) else 3
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
            if i + 1 < len(chans):
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.net(codes) + 0.5


class TokenTransformer(nn.Module):
    """Masked token model over ``window x window`` tokens: logits ``[B, window**2, V]``.

    Input tokens are ``0..V-1``; the value ``V`` marks a masked (lost) position.
    """

    def __init__(self, config: ResilientConfig) -> None:
        super().__init__()
        self.config = config
        v, d, n = config.vocab, config.dim, config.window ** 2
        self.embed = nn.Embedding(v + 1, d)
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, config.heads, 4 * d, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, v)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, window**2]`` (``V`` = masked) -> logits ``[B, window**2, V]``."""
        x = self.embed(tokens) + self.pos
        return self.head(self.norm(self.blocks(x)))

    def predict_grid(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Token probabilities ``[h, w, V]`` for a grid ``tokens [h, w]`` of which ``known``
        (bool ``[h, w]``) are received; the grid is cut into windows (padded with masked
        positions), processed as one batch."""
        win, v = self.config.window, self.config.vocab
        h, w = tokens.shape
        ph, pw = -h % win, -w % win
        t = torch.where(known, tokens, torch.full_like(tokens, v))
        t = F.pad(t, (0, pw, 0, ph), value=v)
        hh, ww = t.shape
        windows = t.view(hh // win, win, ww // win, win).permute(0, 2, 1, 3).reshape(-1, win * win)
        probs = torch.softmax(self.forward(windows), dim=-1)
        probs = probs.view(hh // win, ww // win, win, win, v).permute(0, 2, 1, 3, 4)
        return probs.reshape(hh, ww, v)[:h, :w]


class ResilientModel(nn.Module):
    """The codec's networks: analysis, FSQ, synthesis and the concealing transformer."""

    def __init__(self, config: ResilientConfig | None = None) -> None:
        super().__init__()
        self.config = config or ResilientConfig()
        self.analysis = Analysis(self.config)
        self.fsq = FSQ(self.config.levels)
        self.synthesis = Synthesis(self.config)
        self.transformer = TokenTransformer(self.config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        """Image ``[B, 3, H, W]`` (H, W multiples of ``patch``) -> tokens ``[B, H/p, W/p]``."""
        return self.fsq.codes_to_tokens(self.fsq(self.analysis(image)))

    def conceal(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Codes ``[C, h, w]`` for a grid with lost tokens: received tokens exactly, lost ones
        as the expected code under the transformer's prediction."""
        codes = self.fsq.tokens_to_codes(tokens.unsqueeze(0))[0]
        if bool(known.all()):
            return codes
        probs = self.transformer.predict_grid(tokens, known)
        expected = (probs @ self.fsq.codebook()).permute(2, 0, 1)
        return torch.where(known.unsqueeze(0), codes, expected)


# ----------------------------------------------------------------------------- files


def save_resilient(model: ResilientModel, frequencies: torch.Tensor, path: str | Path,
                   metadata: dict[str, str] | None = None) -> None:
    """Weights (float32) and the coder's integer frequency table (int64, rows summing to
    ``2**PRECISION``) as one safetensors file."""
    tensors = state_tensors(model)
    table = torch.as_tensor(frequencies, dtype=torch.int64)
    tensors["coder.frequencies"] = table.cpu().contiguous()
    save_weights(tensors, path, WEIGHTS_FORMAT, model.config, metadata)


def load_resilient(path: str | Path, device: torch.device | str = "cpu"
                   ) -> tuple[ResilientModel, torch.Tensor, dict[str, str]]:
    """(model in eval mode, frequency table, metadata) from a :func:`save_resilient` file;
    ZooError (a GenjsccError) if there is no such file or it is not one."""
    meta, tensors = read_weights(path, WEIGHTS_FORMAT)
    freqs = tensors.pop("coder.frequencies")
    model = ResilientModel(ResilientConfig(**json.loads(meta["config"])))
    model.load_state_dict(tensors)
    return model.to(device).eval(), freqs, meta
