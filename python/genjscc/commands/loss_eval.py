"""Images over packet-erasure links: the loss-resilient codec beside HEIF + erasure-code FEC.

Every image of --images is sent at every --budget-bpp (bits per pixel of whole packets,
headers included) by each scheme in the same number of --packet-bytes packets: the resilient
codec (tokens interleaved across packets, any subset decodes, lost tokens concealed; above its
natural rate it repeats packets) and HEIF (or the best of --codecs) protected by a systematic
zfec erasure code at redundancy 0, 25, 50 and 100 % (the best redundancy by mean PSNR is
reported, every one with --all-settings). Each trial draws one seeded loss mask per channel
and image, shared by both schemes. Channels: independent loss (--burst 0) or Gilbert-Elliott
with the mean burst (packets) of --burst, at every --loss-rate; --traces adds the six
ResiComp-style traces EP1..EP6 rebuilt from their loss rate and burst. A failed decode shows
mid-gray and is counted. See docs/resilient.md.
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
  genjscc loss-eval --images photos/ --loss-rate 0,0.1,0.3 --burst 2.5 --budget-bpp 0.15
  genjscc loss-eval --images photos/ --schemes resilient,heif-fec --loss-rate 0:0.5:0.1 \\
      --burst 0,2.5 --budget-bpp 0.1,0.2 --trials 8 --json > rows.json
  genjscc loss-eval --images photos/ --traces EP1,EP3,EP6 --loss-rate 0 --burst 0 \\
      --budget-bpp 0.15 --all-settings --plot psnr.png --grid grid.png

--json prints a list of objects: scheme, channel, loss_rate, burst, budget_bpp, psnr_mean,
psnr_p5, ms_ssim_mean, failures, images, trials, setting.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--images", required=True, type=Path, metavar="DIR",
                        help="folder of images (png, jpg, ...), each sent whole")
    parser.add_argument("--schemes", default="resilient,heif-fec",
                        help="comma-separated: resilient, heif-fec (default: both)")
    parser.add_argument("--loss-rate", default="0,0.1,0.3", metavar="LIST",
                        help="packet loss rates in [0, 1): '0,0.1' or 0:0.5:0.1 "
                        "(default: %(default)s)")
    parser.add_argument("--burst", default="2.5", metavar="LIST",
                        help="mean burst lengths in packets; 0 = independent loss "
                        "(default: %(default)s)")
    parser.add_argument("--traces", default="", metavar="LIST",
                        help="also the traces EP1..EP6 (comma-separated)")
    parser.add_argument("--budget-bpp", default="0.15", metavar="LIST",
                        help="bytes on the wire in bits per pixel (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=4, help="loss masks per image (default: 4)")
    parser.add_argument("--packet-bytes", type=int, default=128,
                        help="packet size including headers (default: %(default)s)")
    parser.add_argument("--model", default="resilient-p8",
                        help="resilient codec: zoo name or .safetensors (default: %(default)s)")
    parser.add_argument("--codecs", default="heif",
                        help="baseline codecs, best per budget: heif, webp, jpeg, jpeg2000 "
                        "(default: heif)")
    parser.add_argument("--all-settings", action="store_true",
                        help="one heif-fec row per redundancy instead of the best")
    parser.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (faster)")
    parser.add_argument("--max-images", type=int, default=0, help="use the first N images")
    parser.add_argument("--seed", type=int, default=0, help="loss seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write mean and 5th-percentile PSNR against loss rate here")
    parser.add_argument("--grid", default=None, metavar="PNG",
                        help="write the first image's reconstructions across loss rates here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")


def _options(args: argparse.Namespace) -> dict:
    from genjscc.core.resilient.evaluate import SCHEMES
    from genjscc.core.source.image_codecs import CODECS

    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    bad = [s for s in schemes if s not in SCHEMES]
    if bad or not schemes:
        raise GenjsccError(f"--schemes {args.schemes!r}: choose from {', '.join(SCHEMES)}")
    codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
    if not codecs or any(c not in CODECS for c in codecs):
        raise GenjsccError(f"--codecs {args.codecs!r}: choose from {', '.join(CODECS)}")
    rates = parse_number_list(args.loss_rate, "--loss-rate", 200)
    if any(not 0 <= r < 1 for r in rates):
        raise GenjsccError(f"--loss-rate {args.loss_rate!r}: rates must be in [0, 1)")
    bursts = parse_number_list(args.burst, "--burst", 50)
    if any(b != 0 and b < 1 for b in bursts):
        raise GenjsccError(f"--burst {args.burst!r}: 0 (independent) or >= 1 packet")
    budgets = parse_number_list(args.budget_bpp, "--budget-bpp", 50)
    if any(b <= 0 for b in budgets):
        raise GenjsccError(f"--budget-bpp {args.budget_bpp!r}: budgets must be > 0")
    traces = [t.strip().upper() for t in args.traces.split(",") if t.strip()]
    if args.trials < 1:
        raise GenjsccError("--trials must be >= 1")
    return {"schemes": schemes, "codecs": codecs, "rates": rates, "bursts": bursts,
            "budgets": budgets, "traces": traces}


def run(args: argparse.Namespace) -> int:
    import torch

    from genjscc.core.jscc.images import list_images, load_image
    from genjscc.core.resilient.codec import load_codec
    from genjscc.core.resilient.evaluate import loss_eval, make_channels, plot_grid, plot_rows

    torch.set_num_threads(max(1, args.threads))
    opt = _options(args)
    try:
        channels = make_channels(opt["rates"], opt["bursts"], opt["traces"])
    except ValueError as err:
        raise GenjsccError(f"--loss-rate/--burst/--traces: {err}") from None
    files = list_images(args.images)
    if args.max_images > 0:
        files = files[:args.max_images]
    images = [load_image(f) for f in files]
    codec = load_codec(args.model) if "resilient" in opt["schemes"] else None
    kept: dict = {}

    def keep(scheme, loss, index, image):
        if index == 0:
            kept[(scheme, loss)] = image

    rows = loss_eval(images, codec, opt["schemes"], channels, opt["budgets"], args.trials,
                     args.packet_bytes, opt["codecs"], seed=args.seed,
                     all_settings=args.all_settings, with_ms_ssim=not args.no_ms_ssim,
                     keep=keep if args.grid else None)
    if args.plot:
        plot_rows(rows, args.plot)
    if args.grid:
        plot_grid(images[0], kept, args.grid, files[0].name)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows))
        for path in (args.plot, args.grid):
            if path:
                print(f"wrote {path}", file=sys.stderr)
    return 0


def table(rows: list[dict]) -> str:
    lines = [f"{'scheme':<10} {'channel':<7} {'loss':>5} {'burst':>5} {'bpp':>6} {'PSNR':>7} "
             f"{'P5':>7} {'MS-SSIM':>8} {'failed':>9}  setting"]
    for r in rows:
        ssim = "" if r["ms_ssim_mean"] is None else f"{r['ms_ssim_mean']:.4f}"
        lines.append(f"{r['scheme']:<10} {r['channel']:<7} {r['loss_rate']:>5.3g} "
                     f"{r['burst']:>5.3g} {r['budget_bpp']:>6.3g} {r['psnr_mean']:>7.2f} "
                     f"{r['psnr_p5']:>7.2f} {ssim:>8} "
                     f"{r['failures']:>4}/{r['images'] * r['trials']:<4}  {r['setting'] or ''}")
    return "\n".join(lines)
