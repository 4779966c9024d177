"""Image transmission quality against SNR: Deep JSCC beside the digital separation baseline.

Every image of --images is sent at every SNR through the shipped JSCC model of --ratio and
through the separation chain (image codec + CRC + 5G NR LDPC + QAM, MCS chosen from the SNR
estimate), with the same number of complex channel uses (ratio x 3 H W) and the same average
energy per channel use. Reported per scheme and SNR: mean PSNR and MS-SSIM over the images and
the decode failures (a failed separation decode shows the mid-gray image, counted in the means).

SNR = Es/N0 per complex channel use in dB (docs/conventions.md). --estimated-snr is what the
transmitter believes: one value for every --snr (cliff below it, leveling above it) or one
per --snr; by default the estimate is exact. See docs/jscc.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genjscc.commands._args import parse_number_list
from genjscc.errors import GenjsccError

EPILOG = """\
examples:
  genjscc jscc-eval --images photos/ --snr 0,5,10
  genjscc jscc-eval --images photos/ --snr=-2:14:2 --estimated-snr 8 --plot cliff.png
  genjscc jscc-eval --images photos/ --snr 0,10,20 --grid grid.png --json > out.json
  genjscc jscc-eval --images photos/ --snr 5 --channel rayleigh --codec jpeg2000
  genjscc jscc-eval --images photos/ --snr 0,10 --ratio 1/12 --scheme jscc
  genjscc jscc-eval --images photos/ --snr 0,10 --backend tcp://gpu-host:5555
                                   the JSCC model on `genjscc serve --models jscc-r1_6`

--json prints a list of objects: scheme, snr_db, estimated_snr_db, ratio, channel, psnr_db,
ms_ssim, failures, images, ebno_db (per 8-bit source value) and extra (MCS, bits per pixel).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--images", required=True, type=Path, metavar="DIR",
                        help="folder of images (png, jpg, ...), each sent whole")
    parser.add_argument("--snr", required=True, metavar="LIST",
                        help="true SNRs in dB: '0,5,10' or START:STOP:STEP (negative: --snr=-2,0)")
    parser.add_argument("--estimated-snr", default=None, metavar="LIST",
                        help="SNR estimates in dB: one for all, or one per --snr "
                        "(default: the true SNR)")
    parser.add_argument("--ratio", default="1/6",
                        help="bandwidth ratio, complex channel uses per source dimension "
                        "(default: 1/6; shipped: see `genjscc models`)")
    parser.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh"),
                        help="AWGN, or Rayleigh block fading with one coefficient per image "
                        "(default: awgn)")
    parser.add_argument("--model", default=None,
                        help="JSCC zoo name or .safetensors path (default: the shipped model of "
                        "--ratio)")
    parser.add_argument("--scheme", default="both", choices=("both", "jscc", "separation"),
                        help="which schemes to run (default: both)")
    parser.add_argument("--codec", default="heif",
                        help="separation image codec(s), comma-separated: heif, jpeg2000, webp, "
                        "jpeg (default: heif)")
    parser.add_argument("--mcs-table", type=int, default=1, choices=(1, 2),
                        help="TS 38.214 MCS table of the separation chain (default: 1)")
    parser.add_argument("--margin", type=float, default=1.0, metavar="DB",
                        help="link-adaptation back-off from the estimate (default: 1 dB)")
    parser.add_argument("--max-images", type=int, default=0,
                        help="use only the first N images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--backend", default="local",
                        help="where the JSCC model runs: local (default) or tcp://HOST:PORT of "
                        "`genjscc serve --models jscc-r1_6` (docs/protocol.md)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write PSNR and MS-SSIM against SNR here")
    parser.add_argument("--grid", default=None, metavar="PNG",
                        help="write the reconstructions of the first image across SNR here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")


def parse_snr_list(text: str | None, option: str) -> list[float]:
    """``"0,5,10"`` or ``"-2:14:2"`` (stop included), or a mix -> floats (None: [])."""
    return [] if text is None else parse_number_list(text, option, max_points=200)


def _model(args: argparse.Namespace):
    from genjscc.core.jscc import load_model, model_name, parse_ratio

    name = args.model or model_name(args.ratio)
    from genjscc.serve.client import parse_backend

    if parse_backend(args.backend) is not None:
        from genjscc.serve.jscc import RemoteJSCC

        model = RemoteJSCC(args.backend, name)
        if model.ratio != parse_ratio(args.ratio):
            raise GenjsccError(f"model {name} has ratio {model.ratio}, not --ratio {args.ratio}")
        return model
    model = load_model(name)
    if model.ratio != parse_ratio(args.ratio):
        raise GenjsccError(f"model {name} has ratio {model.ratio}, not --ratio {args.ratio}")
    return model


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from genjscc.core.jscc.evaluate import evaluate_schemes, pair_snrs, plot_curves, plot_grid
    from genjscc.core.jscc.images import list_images, load_image
    from genjscc.core.jscc.separation import SeparationLink

    torch.set_num_threads(max(1, args.threads))
    snrs = parse_snr_list(args.snr, "--snr")
    estimates = parse_snr_list(args.estimated_snr, "--estimated-snr") or None
    pairs = pair_snrs(snrs, estimates)
    files = list_images(args.images)
    if args.max_images > 0:
        files = files[:args.max_images]
    images = [load_image(f) for f in files]
    for f, img in zip(files, images, strict=True):
        if min(img.shape[1:]) < 16:
            raise GenjsccError(f"{f}: images need at least 16 pixels per side")
    model = _model(args) if args.scheme in ("both", "jscc") else None
    links = []
    if args.scheme in ("both", "separation"):
        links = [SeparationLink(c.strip(), table=args.mcs_table, margin_db=args.margin)
                 for c in args.codec.split(",") if c.strip()]
    with tqdm(total=len(pairs) * len(images), desc="jscc-eval", unit="image", file=sys.stderr,
              disable=None, leave=False) as bar:
        points, kept = evaluate_schemes(images, snrs, model, estimates, args.ratio,
                                        args.channel, links, args.seed, progress=bar)
    if args.plot:
        plot_curves(points, args.plot)
    if args.grid:
        plot_grid(images[0], kept, args.grid,
                  title=f"{files[0].name}, ratio {points[0].ratio}, {args.channel}")
    if args.json:
        print(json.dumps([p.to_dict() for p in points], indent=1))
    else:
        print(_table(points))
        for path in (args.plot, args.grid):
            if path:
                print(f"wrote {path}", file=sys.stderr)
    return 0


def _table(points) -> str:
    lines = [f"{'scheme':<20} {'SNR':>6} {'est.':>6} {'Eb/N0':>7} {'PSNR':>7} {'MS-SSIM':>8} "
             f"{'failed':>7}  extra"]
    for p in points:
        extra = "" if not p.extra else f"MCS {p.extra['mcs']}, {p.extra['bpp']:.3f} bpp"
        lines.append(f"{p.scheme:<20} {p.snr_db:>6g} {p.estimated_snr_db:>6g} {p.ebno_db:>7.2f} "
                     f"{p.psnr_db:>7.2f} {p.ms_ssim:>8.4f} {p.failures:>3}/{p.images:<3}  {extra}")
    return "\n".join(lines)
