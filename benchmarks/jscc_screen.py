"""Screen of Deep JSCC training choices at equal CPU time, and the references they are judged by.

Each candidate is a set of `genjscc train jscc` options (so the winner is trained by the same
recipe). It trains for --cpu-minutes of this process's CPU time (1 torch thread, seed 0, the
learning-rate schedule running over the CPU-time budget instead of a step count) and is then
measured on --images held-out photographs: the LAST ones of BSDS500 test/ (the model cards are
measured on the first ones, so the choice is not made on the acceptance images) at 0 and
10 dB over AWGN and 5 dB over Rayleigh fading. Speeds are per CPU-second, so that the load of
the shared machine does not enter the comparison.

`--references` measures, without training: the shipped models, and the linear analog code that
`--arch hybrid` starts from (8x8 block PCA + MSE-optimal power allocation + LMMSE, with the
per-image normalization gain sent in-band), with and without that gain.

    .venv/bin/python benchmarks/jscc_screen.py --references
    .venv/bin/python benchmarks/jscc_screen.py --cpu-minutes 6 --json jscc-runs/screen.json
    .venv/bin/python benchmarks/jscc_screen.py --only hybrid,gdn --json jscc-runs/screen.json

Results go to the --json file (merged by candidate, so a screen can be run in parts) and a
Markdown table to stdout. Not part of benchmarks/run_all.py: it trains models (about
--cpu-minutes x 13 of CPU time).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from benchlib import DATA, jscc_throughput
from genjscc.core.jscc import JSCCChannel, load_model
from genjscc.core.jscc.model import DeepJSCC, init_linear, side_pattern
from genjscc.train import jscc as recipe

DEFAULT_DATA = DATA / "images"
SHIPPED_R1_6 = "jscc-r1_6"

# name -> (train jscc options, what it tests); all at --ratio 1/6 on the shipped recipe's
# channel (-3:17 dB, 10 % Rayleigh), batch 16 of 64x64 crops unless the options say otherwise
CANDIDATES: dict[str, tuple[list[str], str]] = {
    "gdn-finetune": (["--init-from", "SHIPPED", "--lr", "2e-4", "--schedule", "constant"],
                     "shipped GDN weights, constant 2e-4 (what the old background run did)"),
    "gdn": ([], "GDN stacks from scratch, warm-up + cosine 1e-3 over the budget"),
    "gdn-psnr": (["--loss", "psnr"], "GDN from scratch, loss = mean ln MSE"),
    "prelu": (["--nonlinearity", "prelu"], "PReLU instead of GDN, from scratch"),
    "hybrid": (["--arch", "hybrid"], "linear PCA code + GDN residual stacks, in-band gain"),
    "hybrid-linear-encoder": (["--arch", "hybrid", "--no-encoder-residual"],
                              "hybrid without the encoder stack"),
    "hybrid-n32": (["--arch", "hybrid", "--channels", "32"], "hybrid, N = 32"),
    "hybrid-n96": (["--arch", "hybrid", "--channels", "96"], "hybrid, N = 96"),
    "hybrid-crop128": (["--arch", "hybrid", "--crop", "128", "--batch", "4"],
                       "hybrid, 128x128 crops, batch 4 (same pixels per step)"),
    "hybrid-constant": (["--arch", "hybrid", "--schedule", "constant", "--lr", "5e-4"],
                        "hybrid, warm-up then constant 5e-4"),
    "hybrid-snr0_15": (["--arch", "hybrid", "--snr-range", "0:15"],
                       "hybrid, training SNR uniform in 0:15 dB"),
    "hybrid-psnr": (["--arch", "hybrid", "--loss", "psnr"], "hybrid, loss = mean ln MSE"),
    "hybrid-linear-lr1": (["--arch", "hybrid", "--linear-lr-scale", "1"],
                          "hybrid, the linear code at the full learning rate"),
}
WARMUP_SHARE = 0.05  # of the CPU-time budget


def train_args(options: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    base = ["--ratio", "1/6", "--snr-range=-3:17", "--rayleigh-fraction", "0.1"]
    return parser.parse_args(base + options)


def make_model(args: argparse.Namespace, train: list[torch.Tensor]) -> DeepJSCC:
    torch.manual_seed(args.seed)
    model = DeepJSCC(recipe.model_config(args))
    if args.init_from is not None:
        shipped = load_model(str(args.init_from))
        model.load_state_dict(shipped.state_dict())
    elif model.config.arch == "hybrid":
        init_linear(model, train)
    return model


def measure(model: DeepJSCC, valid: list[torch.Tensor]) -> dict[str, float]:
    awgn = recipe.evaluate(model, valid, (0.0, 10.0), "awgn")
    ray = recipe.evaluate(model, valid, (5.0,), "rayleigh")
    enc, dec = jscc_throughput(model, 321, 481, 3, clock=time.process_time)  # CPU seconds
    return {"awgn_0db": awgn[0.0]["psnr_db"], "awgn_10db": awgn[10.0]["psnr_db"],
            "rayleigh_5db": ray[5.0]["psnr_db"], "enc_img_per_cpu_s": enc,
            "dec_img_per_cpu_s": dec, "parameters": model.num_parameters()}


def run_candidate(name: str, train, valid, cpu_minutes: float) -> dict:
    options, _ = CANDIDATES[name]
    options = [SHIPPED_R1_6 if o == "SHIPPED" else o for o in options]
    args = train_args(options)
    model = make_model(args, train)
    optimizer = recipe.make_optimizer(model, args.lr, args.linear_lr_scale)
    gen = torch.Generator().manual_seed(args.seed)
    channel = recipe._MixedChannel(args.rayleigh_fraction, gen)
    lo, hi = recipe.parse_range(args.snr_range)
    budget = cpu_minutes * 60
    start, steps, running = time.process_time(), 0, None
    model.train()
    while (used := time.process_time() - start) < budget:
        recipe.set_lr(optimizer, args.lr * recipe.lr_factor(used / budget, args.lr_min / args.lr,
                                                            WARMUP_SHARE, args.schedule))
        x = recipe.random_crops(train, args.batch, args.crop, gen)
        snr = lo + (hi - lo) * torch.rand(args.batch, generator=gen)
        mse = recipe.train_step(model, optimizer, x, snr, channel, args.loss)
        psnr = -10 * math.log10(max(mse, 1e-10))
        running = psnr if running is None else 0.98 * running + 0.02 * psnr
        steps += 1
    cpu_s = time.process_time() - start
    result = {"name": name, "options": " ".join(options), "steps": steps,
              "crops_per_cpu_s": steps * args.batch / cpu_s,
              "pixels_per_cpu_s": steps * args.batch * args.crop**2 / cpu_s,
              "train_psnr_db": running, "cpu_minutes": cpu_s / 60}
    result.update(measure(model, valid))
    return result


@torch.no_grad()
def references(train, valid) -> list[dict]:
    rows = []
    for name in (SHIPPED_R1_6,):
        res = recipe.evaluate(load_model(name), valid, (0.0, 10.0, 20.0, 40.0))
        rows.append({"reference": f"shipped {name}", **{f"{s:g}": r["psnr_db"]
                                                       for s, r in res.items()}})
    args = train_args(["--arch", "hybrid"])
    linear = make_model(args, train).eval()
    res = recipe.evaluate(linear, valid, (0.0, 10.0, 20.0, 40.0))
    rows.append({"reference": "linear code (hybrid at initialization), in-band gain",
                 **{f"{s:g}": r["psnr_db"] for s, r in res.items()}})
    rows.append({"reference": "linear code, the decoder assuming the average gain",
                 **_linear_without_gain(linear, valid, (0.0, 10.0, 20.0, 40.0))})
    return rows


def _linear_without_gain(model: DeepJSCC, valid, snrs) -> dict[str, float]:
    """The linear code whose decoder does not read the in-band gain: it assumes RMS 1 (the
    training images' typical value), i.e. a plain per-image power normalization."""
    from genjscc.core.jscc.images import psnr_db

    ch, out = JSCCChannel("awgn"), {}
    for snr in snrs:
        gen = torch.Generator().manual_seed(1)
        values = []
        for img in valid:
            x = img.float()[None] / 255.0
            y, _ = ch(model.encode(x, snr), snr, gen)
            hp, wp = model.padded_size(*x.shape[2:])
            z = torch.stack([y.real, y.imag], dim=2).reshape(1, -1, hp // 8, wp // 8)
            p = side_pattern(*z.shape[1:])
            z = (z - (z * p).mean() * p).reshape(1, -1)  # in-band value 0 = RMS 1
            y0 = torch.complex(z[:, 0::2], z[:, 1::2])
            rec = model.decode(y0, snr, *x.shape[2:])
            values.append(float(psnr_db(x, rec)))
        out[f"{snr:g}"] = sum(values) / len(values)
    return out


def markdown(results: dict[str, dict], refs: list[dict] | None) -> str:
    lines = []
    if refs:
        lines += ["| reference (no training) | 0 dB | 10 dB | 20 dB | 40 dB |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['reference']} | {r['0']:.2f} | {r['10']:.2f} | {r['20']:.2f} | "
                  f"{r['40']:.2f} |" for r in refs]
        lines.append("")
    if results:
        lines += ["| candidate | what | steps | crops / CPU-s | train PSNR | AWGN 0 dB | "
                  "AWGN 10 dB | Rayleigh 5 dB | enc / dec images per CPU-s | parameters |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in results.items():
            what = CANDIDATES.get(name, ("", "?"))[1]
            lines.append(f"| {name} | {what} | {r['steps']} | {r['crops_per_cpu_s']:.1f} | "
                         f"{r['train_psnr_db']:.2f} | {r['awgn_0db']:.2f} | "
                         f"{r['awgn_10db']:.2f} | {r['rayleigh_5db']:.2f} | "
                         f"{r['enc_img_per_cpu_s']:.1f} / {r['dec_img_per_cpu_s']:.1f} | "
                         f"{r['parameters']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with train/ and test/ (default ../shared/data/images)")
    ap.add_argument("--cpu-minutes", type=float, default=6.0, help="per candidate (default 6)")
    ap.add_argument("--images", type=int, default=8,
                    help="held-out photographs, the last of test/ (default 8)")
    ap.add_argument("--only", default=None, help="comma-separated candidates (default all)")
    ap.add_argument("--references", action="store_true",
                    help="measure the references only (no training)")
    ap.add_argument("--json", type=Path, default=None, help="results file (merged)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train_files, valid_files = recipe.split_images(args.data)
    train = recipe.load_uint8(train_files)
    valid = recipe.load_uint8(valid_files[-args.images:])
    stored = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    results, refs = stored.get("candidates", {}), stored.get("references")
    if args.references:
        refs = references(train, valid)
    else:
        names = args.only.split(",") if args.only else list(CANDIDATES)
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown:
            ap.error(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
        for name in names:
            t0 = time.time()
            results[name] = run_candidate(name, train, valid, args.cpu_minutes)
            r = results[name]
            print(f"{name}: {r['steps']} steps, {r['awgn_0db']:.2f} / {r['awgn_10db']:.2f} dB "
                  f"at 0 / 10 dB ({time.time() - t0:.0f} s wall)", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps({"candidates": results, "references": refs,
                                                 "images": args.images,
                                                 "cpu_minutes": args.cpu_minutes}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"candidates": results, "references": refs,
                                         "images": args.images,
                                         "cpu_minutes": args.cpu_minutes}, indent=1))
    print(markdown(results, refs))


if __name__ == "__main__":
    main()
