"""Demo part ``resilient``: images over bursty packet loss, the loss-resilient token codec
beside HEIF + erasure-code FEC at the same bytes on the wire.

The shipped BSDS500 test photographs (genjscc/data/images, never trained on) are sent by the
``resilient-p8`` codec (each packet decodes alone; lost tokens are concealed by its masked
transformer) and by HEIF protected by a systematic Reed-Solomon erasure code (zfec) at 0, 25,
50 and 100 % redundancy (the best at each loss rate is shown), over Gilbert-Elliott loss with a
mean burst of 2.5 packets: the library's loss-eval engine (genjscc.core.resilient.evaluate;
docs/resilient.md). The report plots mean and 5th-percentile PSNR against the loss rate and
shows the first photograph as each scheme delivered it at 0, 10 and 30 % loss.

results.json: ``"resilient"``: the rows of ``genjscc loss-eval --json``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

LOSS_RATES = (0.0, 0.1, 0.2, 0.3, 0.5)
GRID_LOSSES = (0.0, 0.1, 0.3)
BURST = 2.5
BUDGET_BPP = 0.18


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--resilient-images", type=int, default=4, metavar="N",
                       help="shipped photographs to send, 1 to 4 (default 4)")
    group.add_argument("--resilient-trials", type=int, default=2, metavar="N",
                       help="loss traces per image and loss rate (default 2)")
    group.add_argument("--resilient-budget", type=float, default=BUDGET_BPP, metavar="BPP",
                       help=f"bits per pixel on the wire, both schemes (default {BUDGET_BPP})")


def check_arguments(args: argparse.Namespace) -> None:
    if not 1 <= args.resilient_images <= 4:
        raise ValueError("--resilient-images must be 1 to 4")
    if not 1 <= args.resilient_trials <= 20:
        raise ValueError("--resilient-trials must be 1 to 20")
    if not (math.isfinite(args.resilient_budget) and 0.05 <= args.resilient_budget <= 2.0):
        raise ValueError("--resilient-budget must be 0.05 to 2 bits per pixel")


def run(args: argparse.Namespace, out: Path) -> tuple[list, dict]:
    from genjscc.core.jscc.images import load_image, sample_images
    from genjscc.core.resilient.codec import load_codec
    from genjscc.core.resilient.evaluate import loss_eval, make_channels, plot_grid, plot_rows

    paths = sample_images()[:args.resilient_images]
    images = [load_image(p) for p in paths]
    kept: dict = {}

    def keep(scheme, loss, index, image):
        if index == 0 and loss in GRID_LOSSES:
            kept[(scheme, loss)] = image

    rows = loss_eval(images, load_codec(), ("resilient", "heif-fec"),
                     make_channels(LOSS_RATES, (BURST,), ()), (args.resilient_budget,),
                     args.resilient_trials, seed=args.seed, keep=keep)
    best = {r["loss_rate"]: r["setting"] for r in rows if r["scheme"] == "heif-fec"}
    grid = {("HEIF + FEC (best)", loss): kept[(f"heif-fec r={_redundancy(best[loss])}", loss)]
            for loss in GRID_LOSSES}
    grid.update({("resilient", loss): kept[("resilient", loss)] for loss in GRID_LOSSES})
    plot_rows(rows, out / "resilient_psnr.png")
    plot_grid(images[0], grid, out / "resilient_grid.png", paths[0].name)
    return [_section(rows, len(images), args)], {"resilient": rows}


def _redundancy(setting: str) -> str:
    """A row's ``"redundancy 0.5"`` -> ``"0.5"``, as loss_eval's ``keep`` names that setting."""
    return setting.removeprefix("redundancy ")


def _section(rows: list[dict], count: int, args: argparse.Namespace):
    from genjscc.demo import report

    lines = ["| loss | resilient mean / p5 (dB) | best HEIF + FEC mean / p5 (dB) | FEC setting | "
             "HEIF + FEC failures |", "|---" * 5 + "|"]
    by = {(r["scheme"], r["loss_rate"]): r for r in rows}
    for loss in LOSS_RATES:
        a, b = by[("resilient", loss)], by[("heif-fec", loss)]
        lines.append(f"| {loss:g} | {a['psnr_mean']:.2f} / {a['psnr_p5']:.2f} | "
                     f"{b['psnr_mean']:.2f} / {b['psnr_p5']:.2f} | {b['setting']} | "
                     f"{b['failures']} of {b['images'] * b['trials']} |")
    text = (
        f"{count} BSDS500 test photographs (never trained on), {args.resilient_budget:g} bits "
        "per pixel on the wire for both schemes in 128-byte packets, Gilbert-Elliott loss with a "
        f"mean burst of {BURST:g} packets, {args.resilient_trials} loss traces per photograph and "
        "rate, shared by both schemes. `resilient`: the `resilient-p8` token codec (every packet "
        "decodes alone; its masked transformer conceals lost tokens). HEIF + FEC: the best "
        "HEIF file that fits, with a Reed-Solomon erasure code (zfec) at the best of 0, 25, 50 "
        "and 100 % redundancy at each loss rate; an image it cannot rebuild counts as mid-gray. "
        "Reproduce on any folder with `genjscc loss-eval --images DIR --loss-rate LIST --burst "
        "2.5 --plot P --grid G` (docs/resilient.md).\n\n" + "\n".join(lines)
        + "\n\nThe first photograph as delivered at 0, 10 and 30 % loss (top: HEIF + FEC at its "
        "best setting for each rate; bottom: the resilient codec):")
    return report.Section(title="Images over bursty packet loss: learned codec against "
                                "HEIF + FEC", text=text,
                          images=["resilient_psnr.png", "resilient_grid.png"])
