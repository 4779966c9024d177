"""Side-by-side evaluation of Deep JSCC and the separation baseline, and the figures.

:func:`evaluate_schemes` sends every image at every (true SNR, estimated SNR) pair through
both schemes with the same channel uses and energy, and returns one :class:`EvalPoint` per
scheme and pair: mean PSNR and MS-SSIM over the images (the fallback image of a failed
separation decode included, so failures pull the mean down as a user would see them), and the
number of failures. :func:`plot_curves` draws PSNR / MS-SSIM against the true SNR;
:func:`plot_grid` the reconstructions of one image across SNR (one row per scheme).

SNR is Es/N0 per complex channel use in dB (docs/conventions.md). The JSCC encoder is told
the estimate and its decoder the true (effective) SNR; the separation transmitter chooses its
MCS from the estimate and its receiver sees the true SNR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from genjscc.core.channel.snr import analog_info_bits_per_channel_use, snr_to_ebno_db
from genjscc.core.jscc.channel import JSCCChannel
from genjscc.core.jscc.images import ms_ssim, psnr_db
from genjscc.core.jscc.model import parse_ratio
from genjscc.core.jscc.separation import SeparationLink

__all__ = ["EvalPoint", "JSCCCodec", "evaluate_schemes", "pair_snrs", "plot_curves",
           "plot_grid"]


class JSCCCodec(Protocol):
    """What the evaluation needs of a JSCC model (a local :class:`DeepJSCC` or a client)."""

    def encode(self, image: torch.Tensor, snr_db: Any) -> torch.Tensor: ...
    def decode(self, y: torch.Tensor, snr_db: Any, height: int, width: int) -> torch.Tensor: ...
    def num_symbols(self, height: int, width: int) -> int: ...


@dataclass
class EvalPoint:
    """Mean quality of one scheme at one (true, estimated) SNR pair over ``images`` images."""

    scheme: str
    snr_db: float
    estimated_snr_db: float
    ratio: str
    channel: str
    psnr_db: float
    ms_ssim: float
    failures: int
    images: int
    ebno_db: float  # per 8-bit source value, the same for both schemes (same channel uses)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_snrs(snr_db: Sequence[float], estimated_snr_db: Sequence[float] | None
              ) -> list[tuple[float, float]]:
    """(true, estimate) pairs: the estimate is the true SNR (None), one fixed estimate for every
    true SNR (one value) or one estimate per true SNR (same length)."""
    snrs = [float(s) for s in snr_db]
    if not snrs or not all(math.isfinite(s) for s in snrs):
        raise ValueError("give at least one finite SNR (dB)")
    if estimated_snr_db is None or len(estimated_snr_db) == 0:
        return [(s, s) for s in snrs]
    est = [float(e) for e in estimated_snr_db]
    if not all(math.isfinite(e) for e in est):
        raise ValueError("estimated SNRs must be finite (dB)")
    if len(est) == 1:
        return [(s, est[0]) for s in snrs]
    if len(est) != len(snrs):
        raise ValueError(f"{len(est)} estimated SNRs for {len(snrs)} SNRs: give one, or one "
                         "per SNR")
    return list(zip(snrs, est, strict=True))


def evaluate_schemes(
    images: Sequence[torch.Tensor],
    snr_db: Sequence[float],
    model: JSCCCodec | None,
    estimated_snr_db: Sequence[float] | None = None,
    ratio: str = "1/6",
    channel: str = "awgn",
    separation: Sequence[SeparationLink] = (),
    seed: int = 0,
    keep_first: bool = True,
    progress: Any = None,
) -> tuple[list[EvalPoint], dict[tuple[str, float, float], torch.Tensor]]:
    """Quality of JSCC (``model``, None to skip) and each separation link at every SNR pair.

    Args:
        images: float ``[3, H, W]`` images in [0, 1] (any sizes, sent one at a time).
        snr_db, estimated_snr_db: see :func:`pair_snrs`.
        model: the JSCC model for ``ratio``.
        ratio: bandwidth ratio (label and channel-use budget; the model's own ratio wins).
        channel: ``"awgn"`` or ``"rayleigh"`` (one coefficient per image, perfect CSI).
        separation: separation links to run (e.g. ``[SeparationLink("heif")]``).
        seed: noise seed; image ``i`` at pair ``j`` uses ``seed + 1000 j + i``, for both schemes.
        keep_first: return the reconstructions of the first image (for :func:`plot_grid`).
        progress: a tqdm-like bar updated once per image and pair, or None.

    Returns:
        (points, reconstructions): points in the order pairs x schemes; reconstructions keyed
        by ``(scheme, snr_db, estimated_snr_db)``.
    """
    if not images:
        raise ValueError("no images to evaluate")
    ratio_f = parse_ratio(getattr(getattr(model, "config", None), "ratio", ratio) or ratio)
    bits_per_use = analog_info_bits_per_channel_use(8.0, float(ratio_f))
    ch = JSCCChannel(channel)
    pairs = pair_snrs(snr_db, estimated_snr_db)
    schemes = (["jscc"] if model is not None else []) + [f"separation-{s.codec}"
                                                         for s in separation]
    points: list[EvalPoint] = []
    kept: dict[tuple[str, float, float], torch.Tensor] = {}
    for j, (snr, est) in enumerate(pairs):
        acc = {s: {"psnr": [], "ssim": [], "fail": 0, "mcs": set(), "bpp": []} for s in schemes}
        for i, img in enumerate(images):
            h, w = img.shape[1:]
            k = _num_symbols(model, ratio_f, h, w)
            recs: dict[str, torch.Tensor] = {}
            if model is not None:
                gen = torch.Generator().manual_seed(seed + 1000 * j + i)
                with torch.no_grad():
                    x = model.encode(img[None], est)
                    y, snr_rx = ch(x, snr, gen)
                    recs["jscc"] = model.decode(y, snr_rx, h, w)[0]
            for link in separation:
                gen = torch.Generator().manual_seed(seed + 1000 * j + i)
                res = link.send(img, k, est, snr, channel, gen)
                name = f"separation-{link.codec}"
                recs[name] = res.image
                acc[name]["fail"] += int(res.failed)
                acc[name]["mcs"].add(res.mcs_index)
                acc[name]["bpp"].append(res.bpp)
            for name, rec in recs.items():
                acc[name]["psnr"].append(float(psnr_db(img, rec)))
                acc[name]["ssim"].append(float(ms_ssim(img, rec)))
                if keep_first and i == 0:
                    kept[(name, snr, est)] = rec
            if progress is not None:
                progress.update(1)
        for name in schemes:
            a = acc[name]
            extra = {}
            if name != "jscc":
                extra = {"mcs": sorted(a["mcs"]), "bpp": sum(a["bpp"]) / len(a["bpp"])}
            points.append(EvalPoint(
                scheme=name, snr_db=snr, estimated_snr_db=est, ratio=str(ratio_f),
                channel=channel, psnr_db=sum(a["psnr"]) / len(a["psnr"]),
                ms_ssim=sum(a["ssim"]) / len(a["ssim"]), failures=a["fail"],
                images=len(images), ebno_db=float(snr_to_ebno_db(snr, bits_per_use)),
                extra=extra))
    return points, kept


def _num_symbols(model: JSCCCodec | None, ratio, h: int, w: int) -> int:
    if model is not None:
        return model.num_symbols(h, w)
    from genjscc.core.jscc.model import DeepJSCC

    hp, wp = DeepJSCC.padded_size(h, w)
    return int(3 * hp * wp * ratio)


def plot_curves(points: Sequence[EvalPoint], path: str | Path, title: str = "") -> None:
    """PSNR and MS-SSIM against the true SNR, one line per (scheme, estimate mode)."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    groups: dict[str, list[EvalPoint]] = {}
    for p in points:
        fixed = len({q.estimated_snr_db for q in points if q.scheme == p.scheme}) == 1 and \
            len({q.snr_db for q in points if q.scheme == p.scheme}) > 1
        label = p.scheme + (f" (estimate {p.estimated_snr_db:g} dB)" if fixed else "")
        groups.setdefault(label, []).append(p)
    for label, pts in groups.items():
        pts = sorted(pts, key=lambda q: q.snr_db)
        style = "-o" if label.startswith("jscc") else "--s"
        axes[0].plot([q.snr_db for q in pts], [q.psnr_db for q in pts], style, label=label)
        axes[1].plot([q.snr_db for q in pts], [q.ms_ssim for q in pts], style, label=label)
        for q in pts:
            if q.failures:
                axes[0].annotate(f"{q.failures}/{q.images}", (q.snr_db, q.psnr_db),
                                 textcoords="offset points", xytext=(2, -10), fontsize=7)
    for ax, name in zip(axes, ("PSNR (dB)", "MS-SSIM"), strict=True):
        ax.set_xlabel("true SNR = Es/N0 per channel use (dB)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    first = points[0] if points else None
    fig.suptitle(title or (f"ratio {first.ratio}, {first.channel}, {first.images} images "
                           "(failed decodes: mid-gray, counted)" if first else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grid(original: torch.Tensor, kept: dict[tuple[str, float, float], torch.Tensor],
              path: str | Path, title: str = "") -> None:
    """Reconstructions of one image: original first, then one row per scheme, one column per
    SNR pair, each titled with its PSNR."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()

    schemes = list(dict.fromkeys(k[0] for k in kept))
    pairs = list(dict.fromkeys((k[1], k[2]) for k in kept))
    if not schemes:
        raise ValueError("no reconstructions to draw")
    h, w = original.shape[1:]
    cell = 2.4
    fig, axes = plt.subplots(len(schemes), len(pairs) + 1, squeeze=False,
                             figsize=(cell * (len(pairs) + 1), cell * h / w * len(schemes) + 0.8))
    for r, scheme in enumerate(schemes):
        axes[r][0].imshow(original.permute(1, 2, 0).clamp(0, 1).numpy())
        axes[r][0].set_title("original" if r == 0 else "", fontsize=8)
        axes[r][0].set_ylabel(scheme, fontsize=8)
        for c, (snr, est) in enumerate(pairs, start=1):
            ax = axes[r][c]
            rec = kept.get((scheme, snr, est))
            if rec is not None:
                ax.imshow(rec.permute(1, 2, 0).clamp(0, 1).numpy())
                est_txt = "" if est == snr else f" (est {est:g})"
                ax.set_title(f"{snr:g} dB{est_txt}: {float(psnr_db(original, rec)):.1f} dB",
                             fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
