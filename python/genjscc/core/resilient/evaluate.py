"""Loss evaluation: the resilient codec against HEIF + erasure-code FEC at equal bytes on the
wire, over packet-loss channels (``genjscc loss-eval``, benchmarks/bench_resilient.py).

For each image and budget (bits per pixel of the *whole* packets, headers included) both
schemes send the same ``n = floor(budget * H * W / 8 / packet_bytes)`` packets. Each trial
draws one seeded loss mask of ``n`` packets (in sending order) per channel, shared by every
scheme. An image that cannot be decoded is a failure and scores as mid-gray (0.5).
Rows: scheme, channel, loss_rate, burst, budget_bpp, psnr_mean, psnr_p5 (5th percentile over
images x trials), ms_ssim_mean, failures, nothing_received (trials that lost every packet),
images, trials, setting (the FEC redundancy; for the
``heif-fec`` row the best one by mean PSNR, ``--all-settings`` keeps one row per redundancy).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genjscc.core.channel.packet_loss import (
    LOSS_TRACES,
    GilbertElliott,
    MarkovPacketLoss,
    independent_loss,
    loss_trace,
)
from genjscc.core.resilient.baseline import REDUNDANCIES, decode_fec, encode_fec
from genjscc.core.resilient.codec import ResilientCodec

SCHEMES = ("resilient", "heif-fec")


@dataclass(frozen=True)
class Channel:
    """A loss channel: ``name`` (``iid``, ``ge`` or a trace), its loss rate and mean burst
    (packets; 0 for independent loss) and the model that draws masks."""

    name: str
    loss_rate: float
    burst: float
    model: MarkovPacketLoss


def make_channels(loss_rates: Sequence[float], bursts: Sequence[float],
                  traces: Sequence[str] = ()) -> list[Channel]:
    """Every (loss rate, burst) pair (burst 0 = independent loss, else Gilbert with that
    mean burst), then the named traces."""
    out = []
    for burst in bursts:
        for rate in loss_rates:
            if burst == 0 or rate == 0:
                out.append(Channel("iid" if burst == 0 else "ge", rate, burst,
                                   independent_loss(rate)))
            else:
                out.append(Channel("ge", rate, burst,
                                   GilbertElliott.from_loss_rate(rate, burst)))
    for name in traces:
        rate, burst = LOSS_TRACES.get(name.upper(), (0, 0))
        out.append(Channel(name.upper(), rate, burst, loss_trace(name)))
    return out


def _mask(channel: Channel, n: int, image: int, trial: int, seed: int) -> np.ndarray:
    """The trial's loss mask (True = lost): seeded by the channel, image and trial only."""
    key = f"{seed}/{channel.name}/{channel.loss_rate}/{channel.burst}/{image}/{trial}"
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    return channel.model.sample(n, gen).numpy()


def _score(reference: torch.Tensor, image: torch.Tensor | None, with_ms_ssim: bool
           ) -> tuple[float, float]:
    from genjscc.core.jscc.images import ms_ssim, psnr_db

    if image is None:
        image = torch.full_like(reference, 0.5)
    p = float(psnr_db(reference, image))
    s = float(ms_ssim(reference, image)) if with_ms_ssim else float("nan")
    return p, s


def loss_eval(images: Sequence[torch.Tensor], codec: ResilientCodec | None,
              schemes: Sequence[str], channels: Sequence[Channel],
              budgets_bpp: Sequence[float], trials: int = 4, packet_bytes: int = 128,
              codecs: tuple[str, ...] = ("heif",), redundancies=REDUNDANCIES,
              seed: int = 0, all_settings: bool = False, with_ms_ssim: bool = True,
              keep: Callable[[str, float, int, torch.Tensor], None] | None = None
              ) -> list[dict]:
    """Rows of the comparison (see the module docstring). ``keep(scheme, loss, image_index,
    reconstruction)`` sees the first trial's reconstructions (for grids of pictures)."""
    for s in schemes:
        if s not in SCHEMES:
            raise ValueError(f"unknown scheme {s!r}; choose from {', '.join(SCHEMES)}")
    if "resilient" in schemes and codec is None:
        raise ValueError("the resilient scheme needs a codec")
    if trials < 1 or not images:
        raise ValueError("need at least one image and one trial")
    rows = []
    for budget in budgets_bpp:
        sent = [_send(img, i, budget, codec, schemes, packet_bytes, codecs, redundancies)
                for i, img in enumerate(images)]
        for ch in channels:
            scores: dict[tuple[str, float | None], list[tuple[float, float]]] = {}
            for i, img in enumerate(images):
                for t in range(trials):
                    lost = _mask(ch, sent[i]["n"], i, t, seed)
                    for key, (image, fail) in _receive(sent[i], lost, codec).items():
                        p, s = _score(img, image, with_ms_ssim)
                        scores.setdefault(key, []).append((p, s, fail, bool(lost.all())))
                        if keep is not None and t == 0:
                            keep(key[0] if key[1] is None else f"{key[0]} r={key[1]:g}",
                                 ch.loss_rate, i, image)
            rows += _rows(scores, ch, budget, len(images), trials, all_settings)
    return rows


def _send(image, index, budget, codec, schemes, packet_bytes, codecs, redundancies) -> dict:
    h, w = image.shape[1:]
    n = max(1, int(budget * h * w / 8 // packet_bytes))
    out: dict = {"n": n}
    if "resilient" in schemes:
        out["resilient"] = codec.encode(image, packet_bytes, num_packets=n, image_id=index)
    if "heif-fec" in schemes:
        cache: dict = {}
        out["fec"] = {}
        for r in redundancies:
            fec = encode_fec(image, min(n, 256), packet_bytes, r, codecs, index, cache)
            # the success image is the same whenever >= k packets arrive: decode it once
            full = decode_fec(fec.packets)[0] if fec.packets else None
            out["fec"][r] = (fec, full)
    return out


def _receive(sent: dict, lost: np.ndarray, codec) -> dict:
    out = {}
    if "resilient" in sent:
        got = [p for p, gone in zip(sent["resilient"], lost, strict=True) if not gone]
        image, _ = codec.decode(got)
        out[("resilient", None)] = (image, image is None)
    for r, (fec, full) in sent.get("fec", {}).items():
        arrived = len({i for i, gone in enumerate(lost[:len(fec.packets)]) if not gone})
        ok = fec.packets and full is not None and arrived >= fec.k
        out[("heif-fec", r)] = (full if ok else None, not ok)
    return out


def _rows(scores, ch: Channel, budget: float, images: int, trials: int,
          all_settings: bool) -> list[dict]:
    rows = []
    for (scheme, setting), vals in scores.items():
        p = np.array([v[0] for v in vals])
        s = np.array([v[1] for v in vals])
        rows.append({"scheme": scheme, "channel": ch.name, "loss_rate": ch.loss_rate,
                     "burst": ch.burst, "budget_bpp": budget,
                     "psnr_mean": round(float(p.mean()), 3),
                     "psnr_p5": round(float(np.percentile(p, 5)), 3),
                     "ms_ssim_mean": round(float(np.nanmean(s)), 4) if np.isfinite(s).any()
                     else None,
                     "failures": int(sum(v[2] for v in vals)),
                     "nothing_received": int(sum(v[3] for v in vals)), "images": images,
                     "trials": trials,
                     "setting": None if setting is None else f"redundancy {setting:g}"})
    fec = [r for r in rows if r["scheme"] == "heif-fec"]
    if fec and not all_settings:
        best = max(fec, key=lambda r: r["psnr_mean"])
        rows = [r for r in rows if r["scheme"] != "heif-fec"] + [best]
    return rows


def plot_rows(rows: list[dict], path) -> None:
    """Mean (solid) and 5th-percentile (dashed) PSNR against loss rate, one line per scheme,
    setting, burst and budget."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict = {}
    for r in rows:
        if r["channel"] not in ("iid", "ge"):
            continue
        key = (r["scheme"], r["setting"], r["burst"], r["budget_bpp"])
        groups.setdefault(key, []).append(r)
    for (scheme, setting, burst, budget), rs in groups.items():
        rs.sort(key=lambda r: r["loss_rate"])
        label = f"{scheme}{' ' + setting if setting else ''}, burst {burst:g}, {budget:g} bpp"
        line, = ax.plot([r["loss_rate"] for r in rs], [r["psnr_mean"] for r in rs], "o-",
                        label=label)
        ax.plot([r["loss_rate"] for r in rs], [r["psnr_p5"] for r in rs], "--",
                color=line.get_color())
    ax.set_xlabel("packet loss rate")
    ax.set_ylabel("PSNR (dB): mean solid, 5th percentile dashed")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_grid(original, kept: dict, path, title: str) -> None:
    """The first image's reconstructions: one row per scheme, one column per loss rate."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()
    schemes = sorted({k[0] for k in kept})
    losses = sorted({k[1] for k in kept})
    fig, axes = plt.subplots(len(schemes), len(losses) + 1, squeeze=False,
                             figsize=(3 * (len(losses) + 1), 2.2 * len(schemes)))
    for row, scheme in enumerate(schemes):
        axes[row, 0].imshow(original.permute(1, 2, 0).numpy())
        axes[row, 0].set_title("original", fontsize=8)
        for col, loss in enumerate(losses, start=1):
            img = kept.get((scheme, loss))
            if img is None:
                img = original.new_full(original.shape, 0.5)
            axes[row, col].imshow(img.clamp(0, 1).permute(1, 2, 0).numpy())
            axes[row, col].set_title(f"{scheme}, loss {loss:g}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
