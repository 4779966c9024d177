"""SNR-adaptive Deep JSCC for images (Bourtsoulatze et al. 2019; ADJSCC, Xu et al. 2021).

The encoder maps an RGB image ``[B, 3, H, W]`` (values in [0, 1]) straight to complex channel
symbols; the decoder maps noisy symbols back to an image. Both are fully convolutional: any
``H x W`` that is a multiple of :attr:`DeepJSCC.downsampling` (8) runs as it is, other sizes are
padded (edge replication) to the next multiple and cropped back after decoding.

Bandwidth ratio (the ``ratio`` of every gr-genjscc JSCC call) is **complex channel uses per
source dimension**: an ``H x W`` RGB image has ``n = 3 H W`` real source dimensions and is sent
in ``k = ratio * n`` complex symbols. With the 8x downsampling each 8x8 pixel block (192 source
dimensions) becomes ``192 * ratio`` complex symbols = ``384 * ratio`` real latent channels
(64 for 1/6, 32 for 1/12, 16 for 1/24). Padded sizes are charged on the padded area
(:meth:`DeepJSCC.num_symbols`), which is what the schemes compared with it receive as well.

Power: every image's symbols are scaled to an average energy of exactly 1 per complex
symbol (``sum |x|^2 = k``), the ``Es = 1`` of docs/conventions.md, so ``SNR = Es/N0 = 1/N0``.

SNR adaptation: attention-feature (AF) modules after the nonlinearities scale every feature
channel by ``sigmoid(MLP([mean over space of the features, snr_db]))`` (ADJSCC). One model
serves every SNR; the encoder is told the SNR the transmitter expects (the estimate), the
decoder the SNR of its channel (after fading equalization, the effective one).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "DOWNSAMPLING",
    "DeepJSCC",
    "JSCCConfig",
    "latent_channels",
    "load_jscc",
    "normalize_power",
    "parse_ratio",
    "save_jscc",
]

DOWNSAMPLING = 8  # three stride-2 stages
SNR_SCALE_DB = 20.0  # the AF modules read snr_db / 20, so that typical SNRs are O(1)


def parse_ratio(ratio: str | float | Fraction) -> Fraction:
    """Bandwidth ratio as a Fraction: ``"1/6"``, ``1/6`` (float) or ``Fraction(1, 6)``.

    It must give a whole number of real latent channels per 8x8 block (``384 * ratio``).
    """
    try:
        value = Fraction(ratio).limit_denominator(1000) if not isinstance(ratio, str) \
            else Fraction(ratio.strip())
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValueError(f"bandwidth ratio {ratio!r}: write it as a fraction, e.g. 1/6") from None
    if not 0 < value <= 1:
        raise ValueError(f"bandwidth ratio {value} must be in (0, 1]")
    channels = 2 * DOWNSAMPLING**2 * 3 * value
    if channels.denominator != 1:
        raise ValueError(f"bandwidth ratio {value}: 384 * ratio = {float(channels):g} real latent "
                         "channels per 8x8 block is not a whole number; use e.g. 1/6, 1/12, 1/24")
    return value


def latent_channels(ratio: str | float | Fraction) -> int:
    """Real latent channels per position (8x8 pixel block) for a bandwidth ratio."""
    return int(2 * DOWNSAMPLING**2 * 3 * parse_ratio(ratio))


@dataclass
class JSCCConfig:
    """Hyper-parameters of :class:`DeepJSCC` (saved with the weights)."""

    ratio: str = "1/6"  # complex channel uses per source dimension
    channels: int = 64  # feature channels N of every hidden layer
    af_hidden: int = 32  # hidden width of the SNR attention MLPs
    extra: dict = field(default_factory=dict)  # free-form notes (training recipe, ...)

    @property
    def latent_channels(self) -> int:
        return latent_channels(self.ratio)


class GDN(nn.Module):
    """Generalized divisive normalization (Balle et al. 2016) and its inverse.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (``inverse=True`` multiplies). ``beta``
    and ``gamma`` are kept non-negative by squaring their stored square roots.
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        self.gamma_sqrt = nn.Parameter(math.sqrt(0.1) * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta_sqrt**2 + 1e-6
        gamma = (self.gamma_sqrt**2)[:, :, None, None]
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm


class SNRAttention(nn.Module):
    """ADJSCC attention-feature module: channel-wise scaling driven by the SNR.

    ``x * sigmoid(W2 relu(W1 [mean_hw(x), snr_db / 20]))`` for ``x [B, C, H, W]``, ``snr_db [B]``.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels + 1, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        context = torch.cat([x.mean(dim=(2, 3)), snr_db[:, None] / SNR_SCALE_DB], dim=1)
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(context))))
        return x * scale[:, :, None, None]


def normalize_power(z: torch.Tensor) -> torch.Tensor:
    """Scale each row of complex ``z [B, k]`` to average energy 1 (``sum |z|^2 = k``)."""
    energy = (z.real**2 + z.imag**2).mean(dim=1, keepdim=True)
    return z / torch.sqrt(energy + 1e-12)


class DeepJSCC(nn.Module):
    """SNR-adaptive Deep JSCC encoder + decoder (batched, CPU or CUDA).

    * :meth:`encode` ``(image [B, 3, H, W] in [0, 1], snr_db [B] or float) -> x [B, k]``,
      complex64, average energy 1 per image.
    * :meth:`decode` ``(y [B, k], snr_db, height, width) -> image [B, 3, H, W]`` in [0, 1].
    * ``forward(image, snr_db, channel)`` runs encoder, channel and decoder for training:
      ``channel(x, snr_db) -> (y, snr_db_at_decoder)``.
    """

    downsampling = DOWNSAMPLING

    def __init__(self, config: JSCCConfig | None = None):
        super().__init__()
        self.config = config or JSCCConfig()
        n, c, h = self.config.channels, self.config.latent_channels, self.config.af_hidden
        self.enc_convs = nn.ModuleList([
            nn.Conv2d(3, n, 5, stride=2, padding=2),
            nn.Conv2d(n, n, 5, stride=2, padding=2),
            nn.Conv2d(n, n, 5, stride=2, padding=2),
            nn.Conv2d(n, n, 3, padding=1),
        ])
        self.enc_norms = nn.ModuleList([GDN(n) for _ in range(4)])
        self.enc_af = nn.ModuleList([SNRAttention(n, h) for _ in range(4)])
        self.enc_out = nn.Conv2d(n, c, 3, padding=1)
        self.dec_in = nn.Conv2d(c, n, 3, padding=1)
        self.dec_convs = nn.ModuleList([
            nn.Conv2d(n, n, 3, padding=1),
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1),
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1),
        ])
        self.dec_norms = nn.ModuleList([GDN(n, inverse=True) for _ in range(4)])
        self.dec_af = nn.ModuleList([SNRAttention(n, h) for _ in range(4)])
        self.dec_out = nn.ConvTranspose2d(n, 3, 5, stride=2, padding=2, output_padding=1)

    @property
    def ratio(self) -> Fraction:
        return parse_ratio(self.config.ratio)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def padded_size(height: int, width: int) -> tuple[int, int]:
        """The size actually coded: each side rounded up to a multiple of 8."""
        m = DOWNSAMPLING
        return -(-height // m) * m, -(-width // m) * m

    def num_symbols(self, height: int, width: int) -> int:
        """Complex channel uses ``k`` for an ``height x width`` RGB image (padded size)."""
        hp, wp = self.padded_size(height, width)
        return self.config.latent_channels * (hp // 8) * (wp // 8) // 2

    def _snr(self, snr_db: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device).reshape(-1)
        if snr.numel() == 1:
            snr = snr.expand(batch)
        if snr.numel() != batch:
            raise ValueError(f"snr_db has {snr.numel()} values for a batch of {batch}")
        if not bool(torch.isfinite(snr).all()):
            raise ValueError("snr_db must be finite")
        return snr

    def encode(self, image: torch.Tensor, snr_db: float | torch.Tensor) -> torch.Tensor:
        """Complex symbols ``[B, k]`` (complex64, unit average energy per image)."""
        if not (isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[1] == 3):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image must be a float tensor [B, 3, H, W], got {shape}")
        if not image.is_floating_point():
            raise ValueError(f"image must be floating point in [0, 1], got dtype {image.dtype}")
        b, _, height, width = image.shape
        hp, wp = self.padded_size(height, width)
        x = image
        if (hp, wp) != (height, width):
            x = F.pad(x, (0, wp - width, 0, hp - height), mode="replicate")
        snr = self._snr(snr_db, b, image.device)
        x = x - 0.5  # centred input
        for conv, norm, af in zip(self.enc_convs, self.enc_norms, self.enc_af, strict=True):
            x = af(norm(conv(x)), snr)
        z = self.enc_out(x).reshape(b, -1)
        z = torch.complex(z[:, 0::2], z[:, 1::2])  # channel pairs -> one complex use each
        return normalize_power(z)

    def decode(self, y: torch.Tensor, snr_db: float | torch.Tensor, height: int,
               width: int) -> torch.Tensor:
        """Image ``[B, 3, height, width]`` in [0, 1] from received symbols ``y [B, k]``."""
        if not (isinstance(y, torch.Tensor) and y.is_complex() and y.dim() == 2):
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be a complex tensor [B, k], got {shape}")
        k = self.num_symbols(height, width)
        if y.shape[1] != k:
            raise ValueError(f"a {height}x{width} image at ratio {self.ratio} needs {k} symbols, "
                             f"got {y.shape[1]}")
        b = y.shape[0]
        hp, wp = self.padded_size(height, width)
        snr = self._snr(snr_db, b, y.device)
        z = torch.stack([y.real, y.imag], dim=2).reshape(b, self.config.latent_channels,
                                                         hp // 8, wp // 8)
        x = self.dec_in(z.float())
        x = self.dec_af[0](self.dec_norms[0](x), snr)
        for i, conv in enumerate(self.dec_convs, start=1):
            x = self.dec_af[i](self.dec_norms[i](conv(x)), snr)
        x = torch.sigmoid(self.dec_out(x))
        return x[:, :, :height, :width]

    def forward(self, image: torch.Tensor, snr_db: torch.Tensor, channel) -> torch.Tensor:
        """Encode, send through ``channel(x, snr_db) -> (y, decoder_snr_db)``, decode."""
        x = self.encode(image, snr_db)
        y, snr_rx = channel(x, snr_db)
        return self.decode(y, snr_rx, image.shape[2], image.shape[3])


def save_jscc(model: DeepJSCC, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write the weights and the configuration as safetensors (metadata holds the config)."""
    import json

    from safetensors.torch import save_file

    meta = {"genjscc_kind": "jscc", "config": json.dumps(asdict(model.config))}
    meta.update(metadata or {})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def load_jscc(path: str | Path, device: str | torch.device = "cpu") -> DeepJSCC:
    """A :class:`DeepJSCC` in eval mode from a file written by :func:`save_jscc`."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSCC weights {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error type for a corrupt header
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    if meta.get("genjscc_kind") != "jscc" or "config" not in meta:
        raise ValueError(f"{path} is not a gr-genjscc JSCC model (no jscc metadata)")
    model = DeepJSCC(JSCCConfig(**json.loads(meta["config"])))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()
