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
    r = parse_ratio(ratio)
    return f"jscc-r{r.numerator}_{r.denominator}"


def load_model(name_or_path: str, device: str = "cpu") -> DeepJSCC:
    """A shipped model by zoo name (``"jscc-r1_6"``, sha256 checked) or a safetensors path."""
    from pathlib import Path

    from genjscc.zoo import get_model

    path = Path(name_or_path)
    if path.suffix == ".safetensors" or path.is_file():
        return load_jscc(path, device)
    entry = get_model(name_or_path)
    if entry.kind != "jscc":
        from genjscc.errors import GenjsccError

        raise GenjsccError(f"model {name_or_path!r} is a {entry.kind} model, not a JSCC model")
    entry.verify()
    return load_jscc(entry.path, device)
