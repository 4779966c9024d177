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

Two architectures (``JSCCConfig.arch``):

* ``"gdn"``: the conv + GDN stacks alone (Bourtsoulatze et al. with ADJSCC modules).
* ``"hybrid"``: a linear analog code with the conv stacks as residuals. An 8x8 block transform
  (a stride-8 convolution, initialized by :func:`init_linear` to the block PCA of training
  photographs) gives the latent coefficients; an SNR-dependent gain per latent channel (a
  table over SNR, initialized to the MSE-optimal linear power allocation) scales them; the
  decoder estimates the coefficients by LMMSE and applies the inverse transform. The encoder
  stack adds a learned residual to the coefficients, the decoder stack a residual to the image.
  It also carries the **per-image normalization gain in-band**: power normalization divides
  each image's latent by its RMS ``s``, which the decoder cannot otherwise know (it is a
  contrast: a plain linear code loses 10 dB of PSNR at 20 dB SNR without it). The encoder
  removes the latent's component along a fixed +-1 checkerboard pattern and puts
  ``eps * tanh(ln s)`` there instead; the decoder reads it back by correlating with the
  pattern (averaged over all symbols of the image, so it is 45 dB cleaner than one symbol on a
  481x321 image), at no extra channel use and within the same unit energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from genjscc.core.weights_file import WeightsFormat, read_weights, save_weights, state_tensors

__all__ = [
    "ARCHS",
    "DOWNSAMPLING",
    "DeepJSCC",
    "JSCCConfig",
    "init_linear",
    "latent_channels",
    "load_jscc",
    "load_jscc_model",
    "normalize_power",
    "parse_ratio",
    "save_jscc",
    "side_pattern",
    "water_filling_gains",
]

DOWNSAMPLING = 8  # three stride-2 stages
SNR_SCALE_DB = 20.0  # the AF modules read snr_db / 20, so that typical SNRs are O(1)
ARCHS = ("gdn", "hybrid")
NONLINEARITIES = ("gdn", "prelu")
GAIN_KNOTS_DB = tuple(float(v) for v in range(-10, 31, 5))  # the hybrid's gain table over SNR
SIDE_EPS = 0.2  # amplitude of the in-band normalization gain (<= 2 % of the energy)
SIDE_T_MAX = 0.95  # |tanh(ln s)| the decoder accepts (s in [0.16, 6.2])


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
    arch: str = "gdn"  # "gdn" (conv stacks alone) or "hybrid" (linear code + residual stacks)
    nonlinearity: str = "gdn"  # "gdn" ((inverse) GDN) or "prelu" between the convolutions
    encoder_residual: bool = True  # hybrid: the encoder stack adds to the linear coefficients

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, "
                             f"got {self.nonlinearity!r}")

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


def _nonlinearity(kind: str, channels: int, inverse: bool = False) -> nn.Module:
    return GDN(channels, inverse) if kind == "gdn" else nn.PReLU(channels, init=0.25)


def side_pattern(channels: int, height: int, width: int, device=None) -> torch.Tensor:
    """The +-1 checkerboard ``(-1)^(c + i + j)`` over real latent values ``[C, h, w]``."""
    c = torch.arange(channels, device=device)[:, None, None]
    i = torch.arange(height, device=device)[None, :, None]
    j = torch.arange(width, device=device)[None, None, :]
    return 1.0 - 2.0 * ((c + i + j) % 2).float()


def _interp_table(table: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``table [C, K]`` over GAIN_KNOTS_DB at ``snr_db [B]`` -> ``[B, C]``
    (held constant outside the knots)."""
    lo, step = GAIN_KNOTS_DB[0], GAIN_KNOTS_DB[1] - GAIN_KNOTS_DB[0]
    pos = ((snr_db - lo) / step).clamp(0, len(GAIN_KNOTS_DB) - 1)
    i0 = pos.floor().long().clamp(max=len(GAIN_KNOTS_DB) - 2)
    frac = (pos - i0.float())[:, None]
    return table[:, i0].T * (1 - frac) + table[:, i0 + 1].T * frac


class DeepJSCC(nn.Module):
    """SNR-adaptive Deep JSCC encoder + decoder (batched, CPU or CUDA).

    * :meth:`encode` ``(image [B, 3, H, W] in [0, 1], snr_db [B] or float) -> x [B, k]``,
      complex64, average energy 1 per image.
    * :meth:`decode` ``(y [B, k], snr_db, height, width) -> image [B, 3, H, W]`` in [0, 1].
    * ``forward(image, snr_db, channel)`` runs encoder, channel and decoder for training:
      ``channel(x, snr_db) -> (y, snr_db_at_decoder)``; the image is not clipped to [0, 1].
    """

    downsampling = DOWNSAMPLING

    def __init__(self, config: JSCCConfig | None = None):
        super().__init__()
        self.config = config or JSCCConfig()
        cfg = self.config
        n, c, h = cfg.channels, cfg.latent_channels, cfg.af_hidden
        hybrid = cfg.arch == "hybrid"
        if not hybrid or cfg.encoder_residual:
            self.enc_convs = nn.ModuleList([
                nn.Conv2d(3, n, 5, stride=2, padding=2),
                nn.Conv2d(n, n, 5, stride=2, padding=2),
                nn.Conv2d(n, n, 5, stride=2, padding=2),
                nn.Conv2d(n, n, 3, padding=1),
            ])
            self.enc_norms = nn.ModuleList([_nonlinearity(cfg.nonlinearity, n)
                                            for _ in range(4)])
            self.enc_af = nn.ModuleList([SNRAttention(n, h) for _ in range(4)])
            self.enc_out = nn.Conv2d(n, c, 3, padding=1)
        self.dec_in = nn.Conv2d(c, n, 3, padding=1)
        self.dec_convs = nn.ModuleList([
            nn.Conv2d(n, n, 3, padding=1),
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1),
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1),
        ])
        self.dec_norms = nn.ModuleList([_nonlinearity(cfg.nonlinearity, n, inverse=True)
                                        for _ in range(4)])
        self.dec_af = nn.ModuleList([SNRAttention(n, h) for _ in range(4)])
        self.dec_out = nn.ConvTranspose2d(n, 3, 5, stride=2, padding=2, output_padding=1)
        if hybrid:
            m = DOWNSAMPLING
            self.lin_enc = nn.Conv2d(3, c, m, stride=m)  # block transform -> coefficients
            self.lin_dec = nn.ConvTranspose2d(c, 3, m, stride=m)  # its inverse
            # ln of each coefficient's variance (LMMSE prior) and ln gain per channel and SNR
            self.log_var = nn.Parameter(torch.zeros(c))
            self.log_gain = nn.Parameter(torch.zeros(c, len(GAIN_KNOTS_DB)))
            for layer in [self.dec_out] + ([self.enc_out] if cfg.encoder_residual else []):
                nn.init.zeros_(layer.weight)  # the residuals start at 0: a linear code
                nn.init.zeros_(layer.bias)

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

    def _encoder_stack(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        x = x - 0.5  # centred input
        for conv, norm, af in zip(self.enc_convs, self.enc_norms, self.enc_af, strict=True):
            x = af(norm(conv(x)), snr)
        return self.enc_out(x)

    def _decoder_stack(self, z: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        x = self.dec_af[0](self.dec_norms[0](self.dec_in(z)), snr)
        for i, conv in enumerate(self.dec_convs, start=1):
            x = self.dec_af[i](self.dec_norms[i](conv(x)), snr)
        return self.dec_out(x)

    def gains(self, snr_db: torch.Tensor) -> torch.Tensor:
        """Hybrid: the gain of each latent coefficient at ``snr_db [B]`` -> ``[B, C]``."""
        return torch.exp(_interp_table(self.log_gain, snr_db))

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
        if self.config.arch == "gdn":
            z = self._encoder_stack(x, snr)
        else:
            z = self._hybrid_latent(x, snr)
        z = z.reshape(b, -1)
        z = torch.complex(z[:, 0::2], z[:, 1::2])  # channel pairs -> one complex use each
        return normalize_power(z)

    def _hybrid_latent(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        """Gained coefficients, normalized to 1/2 per real value, with the gain in-band."""
        u = self.lin_enc(x)
        if self.config.encoder_residual:  # residuals in units of each coefficient's std
            u = u + self._encoder_stack(x, snr) * torch.exp(0.5 * self.log_var)[:, None, None]
        u = u * self.gains(snr)[:, :, None, None]
        p = side_pattern(*u.shape[1:], device=u.device)
        rms = torch.sqrt(2 * (u * u).mean(dim=(1, 2, 3)) + 1e-12)  # per complex symbol
        t = torch.tanh(torch.log(rms)).clamp(-SIDE_T_MAX, SIDE_T_MAX)[:, None, None, None]
        z = u / rms[:, None, None, None]
        z = z - (z * p).mean(dim=(1, 2, 3), keepdim=True) * p  # orthogonal to the pattern
        z = z * torch.sqrt((0.5 - SIDE_EPS**2 * t**2)
                           / ((z * z).mean(dim=(1, 2, 3), keepdim=True) + 1e-12))
        return z + SIDE_EPS * t * p  # mean square exactly 1/2: unit energy per symbol

    def decode(self, y: torch.Tensor, snr_db: float | torch.Tensor, height: int,
               width: int) -> torch.Tensor:
        """Image ``[B, 3, height, width]`` in [0, 1] from received symbols ``y [B, k]``."""
        return self._decode(y, snr_db, height, width).clamp(0, 1)

    def _decode(self, y: torch.Tensor, snr_db: float | torch.Tensor, height: int,
                width: int) -> torch.Tensor:
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
                                                         hp // 8, wp // 8).float()
        if self.config.arch == "gdn":
            x = torch.sigmoid(self._decoder_stack(z, snr))
        else:
            x = self._hybrid_decode(z, snr)
        return x[:, :, :height, :width]

    def _hybrid_decode(self, z: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        p = side_pattern(*z.shape[1:], device=z.device)
        t = ((z * p).mean(dim=(1, 2, 3)) / SIDE_EPS).clamp(-SIDE_T_MAX, SIDE_T_MAX)
        shrink = torch.sqrt(1 - 2 * SIDE_EPS**2 * t**2)
        rms = torch.exp(torch.atanh(t))
        scale = (rms / shrink)[:, None, None, None]
        u = (z - SIDE_EPS * t[:, None, None, None] * p) * scale  # gained coefficients + noise
        noise_var = 0.5 * 10 ** (-snr / 10)[:, None] * (rms / shrink)[:, None] ** 2
        a, var = self.gains(snr), torch.exp(self.log_var)[None]
        coef = u * (a * var / (a * a * var + noise_var))[:, :, None, None]  # LMMSE
        white = coef * torch.exp(-0.5 * self.log_var)[:, None, None]
        return self.lin_dec(coef) + self._decoder_stack(white, snr)

    def forward(self, image: torch.Tensor, snr_db: torch.Tensor, channel) -> torch.Tensor:
        """Encode, send through ``channel(x, snr_db) -> (y, decoder_snr_db)``, decode."""
        x = self.encode(image, snr_db)
        y, snr_rx = channel(x, snr_db)
        return self._decode(y, snr_rx, image.shape[2], image.shape[3])


def water_filling_gains(variances: torch.Tensor, snr_db: float) -> torch.Tensor:
    """MSE-optimal linear analog gains for coefficients of ``variances [C]`` at ``snr_db``.

    Each coefficient ``c_i`` goes out on one real channel use as ``g_i c_i`` with noise of
    variance ``N0 / 2 = 1 / (2 SNR)`` and mean power 1/2 per use; the LMMSE error
    ``sum var_i / (1 + g_i^2 var_i / (N0/2))`` is minimized by
    ``g_i^2 var_i = (N0/2) (sqrt(var_i / (mu N0/2)) - 1)+`` (reverse water-filling on the
    square roots). Coefficients left out get a gain 1e-3 times the largest (not 0, for ln).
    """
    var = variances.double().clamp_min(1e-12)
    sigma2 = 0.5 * 10 ** (-snr_db / 10)
    budget = 0.5 * var.numel()
    lo, hi = 1e-30, 1e30
    for _ in range(300):  # bisection on the water level mu (geometric)
        mu = math.sqrt(lo * hi)
        power = (sigma2 * (torch.sqrt(var / (sigma2 * mu)) - 1)).clamp_min(0)
        lo, hi = (mu, hi) if float(power.sum()) > budget else (lo, mu)
    gains = torch.sqrt(power / var)
    return gains.clamp_min(1e-3 * float(gains.max())).float()


@torch.no_grad()
def init_linear(model: DeepJSCC, images: list[torch.Tensor]) -> dict[str, float]:
    """Set a hybrid model's linear code from photographs: block PCA of their 8x8 RGB blocks.

    ``images``: uint8 or float ``[3, H, W]``. The transform keeps the leading C principal
    components (C latent channels); the gain tables become :func:`water_filling_gains` at
    every knot, scaled so that a typical image's gained coefficients have RMS 1. Returns the
    share of the block variance kept.
    """
    if model.config.arch != "hybrid":
        raise ValueError("init_linear needs a hybrid model")
    m, c = DOWNSAMPLING, model.config.latent_channels
    blocks = []
    for img in images:
        x = img.float() / 255.0 if not img.is_floating_point() else img.float()
        h, w = x.shape[1] // m * m, x.shape[2] // m * m
        blocks.append(F.unfold(x[None, :, :h, :w], m, stride=m)[0].T)  # [n, 3*8*8]
    data = torch.cat(blocks).double()
    colour = data.reshape(len(data), 3, -1).mean(dim=(0, 2))  # mean of each colour
    centred = data - colour.repeat_interleave(m * m)
    eigval, eigvec = torch.linalg.eigh(centred.T @ centred / len(data))
    eigval, eigvec = eigval.flip(0)[:c], eigvec.flip(1)[:, :c]
    basis = eigvec.T.reshape(c, 3, m, m).float()
    model.lin_enc.weight.copy_(basis)
    model.lin_enc.bias.copy_(-(basis.sum(dim=(2, 3)) @ colour.float()))
    model.lin_dec.weight.copy_(basis)
    model.lin_dec.bias.copy_(colour.float())
    model.log_var.copy_(torch.log(eigval.float().clamp_min(1e-10)))
    for knot, snr in enumerate(GAIN_KNOTS_DB):
        gains = water_filling_gains(eigval, snr)
        rms = torch.sqrt(2 * (gains**2 * eigval.float()).mean())  # per complex symbol
        model.log_gain[:, knot] = torch.log(gains / rms)
    return float(eigval.sum() / torch.linalg.eigvalsh(centred.T @ centred / len(data)).sum())


WEIGHTS_FORMAT = WeightsFormat("jscc", "JSCC", {"genjscc_kind": ("jscc",)})
"""How :func:`save_jscc` tags its files."""


def save_jscc(model: DeepJSCC, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write the weights and the configuration as safetensors (metadata holds the config)."""
    save_weights(state_tensors(model), path, WEIGHTS_FORMAT, model.config, metadata)


def load_jscc(path: str | Path, device: str | torch.device = "cpu") -> DeepJSCC:
    """A :class:`DeepJSCC` in eval mode from a file written by :func:`save_jscc`; ZooError
    if there is no such file or it is not one."""
    import json

    meta, tensors = read_weights(path, WEIGHTS_FORMAT)
    model = DeepJSCC(JSCCConfig(**json.loads(meta["config"])))
    model.load_state_dict(tensors)
    return model.to(device).eval()


def load_jscc_model(ref: Any, device: str | torch.device = "cpu") -> DeepJSCC:
    """The ``jscc`` loader of :data:`genjscc.zoo.KINDS`: :func:`load_jscc` of ``ref.path``."""
    return load_jscc(ref.path, device)
