"""Analog Deep JSCC image transmission and its digital separation baseline (docs/jscc.md).

* :mod:`.model` :class:`DeepJSCC`, the SNR-adaptive encoder/decoder (bandwidth ratio = complex
  channel uses per source dimension), :func:`save_jscc` / :func:`load_jscc`.
* :mod:`.channel` :class:`JSCCChannel`: AWGN and Rayleigh block fading (ZF, effective SNR).
* :mod:`.separation` :class:`SeparationLink`: image codec + CRC + 5G NR LDPC + QAM with the MCS
  chosen from an SNR estimate, same channel uses and energy as JSCC.
* :mod:`.evaluate` PSNR / MS-SSIM sweeps of both schemes, the reconstruction grid.
* :mod:`.images` image files <-> tensors, PSNR, MS-SSIM.
"""

from __future__ import annotations

from genjscc.core.jscc.channel import CHANNELS, JSCCChannel
from genjscc.core.jscc.model import (
    DOWNSAMPLING,
    DeepJSCC,
    JSCCConfig,
    init_linear,
    latent_channels,
    load_jscc,
    normalize_power,
    parse_ratio,
    save_jscc,
)

__all__ = [
    "CHANNELS",
    "DOWNSAMPLING",
    "DeepJSCC",
    "JSCCChannel",
    "JSCCConfig",
    "init_linear",
    "latent_channels",
    "load_jscc",
    "load_model",
    "model_name",
    "normalize_power",
    "parse_ratio",
    "save_jscc",
]


def model_name(ratio) -> str:
    """Zoo name of the shipped model for a bandwidth ratio: ``"1/6"`` -> ``"jscc-r1_6"``."""
    from genjscc.zoo import model_name as zoo_model_name

    return zoo_model_name("jscc", ratio)


def load_model(name_or_path: str, device: str = "cpu") -> DeepJSCC:
    """A shipped model by zoo name (``"jscc-r1_6"``, sha256 checked) or a safetensors path
    (:func:`genjscc.zoo.load`)."""
    from genjscc.zoo import load

    return load(name_or_path, "jscc", device)
