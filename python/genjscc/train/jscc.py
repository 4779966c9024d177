"""Train an SNR-adaptive Deep JSCC model (genjscc.core.jscc) on random crops of photographs.

Data (a developer's input; the product never reads it): every image in a folder named
``train`` under DATA (--data, default $GENJSCC_DATA/images; BSDS500 train/, 200 photographs) is
decoded once into memory; each step draws --batch random --crop x --crop crops (random image,
position and horizontal flip). Held out for validation: the images of folders named ``test`` or
``val`` under DATA (BSDS500 test/, 200 photographs), scored whole (481x321, padded to 488x328).

Each crop is sent at its own SNR, uniform in --snr-range (dB, Es/N0 per complex channel use),
through AWGN, or with probability --rayleigh-fraction through Rayleigh block fading (one
coefficient per crop, perfect CSI, zero-forcing; the decoder is told the effective SNR, the
encoder only the average). Loss: MSE (or --loss psnr: the mean over crops of ln MSE, which
weighs every crop's PSNR alike instead of letting the noisy low-SNR crops dominate). Adam,
linear --warmup then cosine decay from --lr to --lr-min over --steps (or --schedule constant);
a resume with more --steps continues on the longer schedule.

--arch hybrid (docs/jscc.md) starts from a linear analog code: the block PCA of the training
images and the MSE-optimal power allocation, computed here before the first step; its linear
parameters learn at --linear-lr-scale times the learning rate.

Resumable: RUN_DIR/checkpoint.pt (model, optimizer, step, elapsed time, RNG, history) is written
every --checkpoint-every steps and when --minutes runs out; --resume continues from it. A
validation line (PSNR at 0 and 10 dB, AWGN) goes to RUN_DIR/log.jsonl every --valid-every steps.
When the schedule ends or --minutes runs out (or at once with --export) the model is measured
on the validation images (PSNR and MS-SSIM against SNR, AWGN and Rayleigh) and written to the
zoo (zoo/weights/NAME.safetensors, card zoo/NAME.md, manifest entry) unless --no-register.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from genjscc.core.jscc import model_name as zoo_name
from genjscc.core.jscc.channel import JSCCChannel
from genjscc.core.jscc.model import (
    ARCHS,
    NONLINEARITIES,
    DeepJSCC,
    JSCCConfig,
    init_linear,
    parse_ratio,
    save_jscc,
)
from genjscc.errors import GenjsccError
from genjscc.machine import cpu_name
from genjscc.train import parse_range as parse_training_range
from genjscc.train.data import default_data, require_data

LOSSES = ("mse", "psnr")
LINEAR_PARAMS = ("lin_enc.", "lin_dec.", "log_var", "log_gain")
EVAL_SNR_DB = (-2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0)
VALID_SNR_DB = (0.0, 10.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ratio", default="1/6",
                        help="bandwidth ratio, complex channel uses per source dimension "
                        "(%(default)s; 1/12, 1/24, ...)")
    parser.add_argument("--channels", type=int, default=64, help="feature channels N (%(default)s)")
    parser.add_argument("--arch", choices=ARCHS, default="gdn",
                        help="gdn: conv + GDN stacks; hybrid: linear PCA code with the stacks "
                        "as residuals and the normalization gain in-band (%(default)s)")
    parser.add_argument("--nonlinearity", choices=NONLINEARITIES, default="gdn",
                        help="between the convolutions (%(default)s)")
    parser.add_argument("--no-encoder-residual", action="store_true",
                        help="hybrid: a linear encoder (only the decoder has a conv stack)")
    parser.add_argument("--data", type=Path, default=default_data("images"),
                        help="image folder with train/ and test/ subfolders (default "
                        "$GENJSCC_DATA/images: %(default)s)")
    parser.add_argument("--steps", type=int, default=50_000, help="schedule length (%(default)s)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="stop (and export) after this much training time in this call; "
                        "0 = run the schedule to its end")
    parser.add_argument("--batch", type=int, default=16, help="crops per step (%(default)s)")
    parser.add_argument("--crop", type=int, default=64, help="crop side in pixels (%(default)s)")
    parser.add_argument("--snr-range", default="-4:18", metavar="LO:HI",
                        help="training SNR range in dB, uniform per crop (%(default)s)")
    parser.add_argument("--rayleigh-fraction", type=float, default=0.0,
                        help="share of crops sent through Rayleigh fading (%(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (%(default)s)")
    parser.add_argument("--lr-min", type=float, default=1e-5, help="final learning rate")
    parser.add_argument("--warmup", type=int, default=500,
                        help="linear warm-up steps from the start of the run (%(default)s)")
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                        help="after the warm-up (%(default)s)")
    parser.add_argument("--linear-lr-scale", type=float, default=0.1,
                        help="hybrid: learning-rate factor of the linear code (%(default)s)")
    parser.add_argument("--loss", choices=LOSSES, default="mse",
                        help="mse, or psnr (mean of ln MSE per crop) (%(default)s)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from the weights of another JSCC model (safetensors); "
                        "tensors of another shape (the latent layers of another ratio) are "
                        "left at their initialization")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (%(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default jscc-runs/NAME)")
    parser.add_argument("--name", default=None, help="zoo name (default jscc-r1_6 for 1/6)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument("--export", action="store_true",
                        help="no training: measure and ship the latest checkpoint of RUN_DIR")
    parser.add_argument("--no-register", action="store_true",
                        help="do not write into the zoo (weights, card, manifest)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="%(default)s steps")
    parser.add_argument("--valid-every", type=int, default=2500, help="%(default)s steps")
    parser.add_argument("--valid-images", type=int, default=16,
                        help="validation images for the periodic check (%(default)s)")
    parser.add_argument("--eval-images", type=int, default=0,
                        help="validation images for the final measurement (0 = all)")


def parse_range(text: str) -> tuple[float, float]:
    """``"-4:18"`` -> ``(-4.0, 18.0)``: the ``--snr-range`` in dB."""
    return parse_training_range(text, "--snr-range", "-4:18")


def split_images(root: Path) -> tuple[list[Path], list[Path]]:
    """(training files, validation files): images in folders named train / test or val."""
    from genjscc.core.jscc.images import IMAGE_SUFFIXES

    if not root.is_dir():
        raise GenjsccError(f"--data {root}: no such folder (it needs train/ and test/ inside)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    train = [p for p in files if p.parent.name == "train"]
    valid = [p for p in files if p.parent.name in ("test", "val")]
    if not train or not valid:
        raise GenjsccError(f"--data {root}: need images in a train/ and a test/ (or val/) folder")
    return train, valid


def load_uint8(paths: list[Path]) -> list[torch.Tensor]:
    """Images as uint8 ``[3, H, W]`` tensors (kept in memory for cropping)."""
    from genjscc.core.jscc.images import load_image

    return [(load_image(p) * 255).round().to(torch.uint8) for p in paths]


def random_crops(images: list[torch.Tensor], batch: int, crop: int,
                 gen: torch.Generator) -> torch.Tensor:
    """``[batch, 3, crop, crop]`` float crops in [0, 1], random image, position and flip."""
    idx = torch.randint(len(images), (batch,), generator=gen).tolist()
    out = torch.empty(batch, 3, crop, crop)
    for row, i in enumerate(idx):
        img = images[i]
        h, w = img.shape[1:]
        if h < crop or w < crop:
            raise GenjsccError(f"training image {h}x{w} is smaller than --crop {crop}")
        y = int(torch.randint(h - crop + 1, (1,), generator=gen))
        x = int(torch.randint(w - crop + 1, (1,), generator=gen))
        patch = img[:, y:y + crop, x:x + crop]
        if bool(torch.rand(1, generator=gen) < 0.5):
            patch = patch.flip(-1)
        out[row] = patch.float() / 255.0
    return out


class _MixedChannel:
    """AWGN for most crops, Rayleigh (effective SNR to the decoder) for a share of them."""

    def __init__(self, rayleigh_fraction: float, gen: torch.Generator):
        self.fraction = rayleigh_fraction
        self.gen = gen
        self.awgn = JSCCChannel("awgn")
        self.rayleigh = JSCCChannel("rayleigh")

    def __call__(self, x: torch.Tensor, snr_db: torch.Tensor):
        y, snr_rx = self.awgn(x, snr_db, self.gen)
        if self.fraction > 0:
            pick = torch.rand(x.shape[0], generator=self.gen) < self.fraction
            if bool(pick.any()):
                y_r, snr_r = self.rayleigh(x[pick], snr_db[pick], self.gen)
                y, snr_rx = y.clone(), snr_rx.clone()
                y[pick], snr_rx[pick] = y_r, snr_r
        return y, snr_rx


@torch.no_grad()
def evaluate(model: DeepJSCC, images: list[torch.Tensor], snrs: tuple[float, ...],
             channel: str = "awgn", seed: int = 1, with_ms_ssim: bool = False
             ) -> dict[float, dict[str, float]]:
    """Mean PSNR (and MS-SSIM) of whole validation images at each SNR, fixed noise seed."""
    from genjscc.core.jscc.images import ms_ssim, psnr_db

    model.eval()
    ch = JSCCChannel(channel)
    results = {}
    for snr in snrs:
        gen = torch.Generator().manual_seed(seed)
        psnrs, ssims = [], []
        for img in images:
            x = img.float()[None] / 255.0
            y, snr_rx = ch(model.encode(x, snr), snr, gen)
            rec = model.decode(y, snr_rx, x.shape[2], x.shape[3])
            psnrs.append(float(psnr_db(x, rec)))
            if with_ms_ssim:
                ssims.append(float(ms_ssim(x, rec)))
        results[snr] = {"psnr_db": sum(psnrs) / len(psnrs)}
        if with_ms_ssim:
            results[snr]["ms_ssim"] = sum(ssims) / len(ssims)
    model.train()
    return results


def lr_factor(progress: float, floor: float, warmup: float, schedule: str = "cosine") -> float:
    """Learning-rate factor at ``progress`` (steps or seconds done) of a schedule of length 1.

    ``warmup``: the share of the schedule with a linear ramp; then cosine down to ``floor``
    (times the peak) at ``progress = 1``, or constant.
    """
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    if schedule == "constant":
        return 1.0
    done = min(1.0, (progress - warmup) / max(1e-9, 1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done))


def make_optimizer(model: DeepJSCC, lr: float, linear_lr_scale: float = 0.1
                   ) -> torch.optim.Optimizer:
    """Adam; a hybrid model's linear code in a second group at ``linear_lr_scale`` x lr."""
    linear = [p for n, p in model.named_parameters() if n.startswith(LINEAR_PARAMS)]
    rest = [p for n, p in model.named_parameters() if not n.startswith(LINEAR_PARAMS)]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if linear:
        groups.append({"params": linear, "lr_scale": linear_lr_scale})
    return torch.optim.Adam(groups, lr=lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def train_step(model: DeepJSCC, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               snr_db: torch.Tensor, channel, loss: str = "mse") -> float:
    """One Adam step on crops ``x [B, 3, h, w]`` at ``snr_db [B]``; returns the batch MSE."""
    rec = model(x, snr_db, channel)
    mse = ((rec - x) ** 2).flatten(1).mean(1)
    value = mse.mean() if loss == "mse" else torch.log(mse + 1e-10).mean()
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return float(mse.detach().mean())


def model_config(args: argparse.Namespace) -> JSCCConfig:
    """The JSCCConfig the options describe."""
    return JSCCConfig(ratio=str(parse_ratio(args.ratio)), channels=args.channels,
                      arch=args.arch, nonlinearity=args.nonlinearity,
                      encoder_residual=not args.no_encoder_residual)


def _run_dir(args: argparse.Namespace, name: str) -> Path:
    return args.out or Path("jscc-runs") / name


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if min(args.threads, args.steps, args.batch, args.checkpoint_every, args.valid_every) < 1:
        raise GenjsccError("--threads, --steps, --batch, --checkpoint-every, --valid-every "
                           "must be >= 1")
    if args.crop < 16 or args.crop % 8:
        raise GenjsccError("--crop must be a multiple of 8, at least 16")
    if not 0 <= args.rayleigh_fraction <= 1:
        raise GenjsccError("--rayleigh-fraction must be in [0, 1]")
    if args.warmup < 0 or args.linear_lr_scale < 0 or not args.lr > 0:
        raise GenjsccError("--warmup and --linear-lr-scale must be >= 0, --lr > 0")
    torch.set_num_threads(args.threads)  # a command: the process is ours
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenjsccError("--device cuda: no CUDA device is available; use --device cpu")
    ratio = parse_ratio(args.ratio)
    name = args.name or zoo_name(args.ratio)
    snr_range = parse_range(args.snr_range)
    config = model_config(args)
    run_dir = _run_dir(args, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    train_files, valid_files = split_images(require_data(args.data, "images"))

    torch.manual_seed(args.seed)
    model = DeepJSCC(config).to(device)
    optimizer = make_optimizer(model, args.lr, args.linear_lr_scale)
    gen = torch.Generator().manual_seed(args.seed)
    state: dict[str, Any] = {"step": 0, "elapsed_s": 0.0, "command": _command(), "history": [],
                             "train_images": len(train_files), "args": _recipe(args)}
    if args.resume or args.export:
        if not ckpt_path.is_file():
            raise GenjsccError(f"no checkpoint {ckpt_path} to resume or export from")
        saved = torch.load(ckpt_path, map_location=device, weights_only=False)
        if saved["config"] != asdict(config):
            raise GenjsccError(f"{ckpt_path} holds {saved['config']}, not {asdict(config)}: use "
                               "the same --ratio/--channels/--arch, or another --out")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        state = saved["state"]
        if not args.export:
            state.setdefault("resumed", []).append(_command())
            state["args"] = _recipe(args)  # the card describes the schedule now in force
    elif args.init_from is not None:
        _warm_start(model, args.init_from)
        state["init_from"] = str(args.init_from)

    valid = load_uint8(valid_files)
    if config.arch == "hybrid" and not (args.resume or args.export or args.init_from):
        kept = init_linear(model, load_uint8(train_files))
        print(f"linear code: block PCA of the training images ({100 * kept:.2f} % of the "
              "8x8 block variance kept), water-filling gains", file=sys.stderr)
    if not args.export:
        train = load_uint8(train_files)
        print(f"Deep JSCC ratio {ratio}: N={config.channels}, {model.num_parameters()} "
              f"parameters, {len(train)} training / {len(valid)} validation images, run dir "
              f"{run_dir}", file=sys.stderr)
        _train(args, model, optimizer, gen, state, train, valid, snr_range, ckpt_path, device,
               tqdm)
    if not args.no_register:
        _export(args, model, name, state, valid, device)
    return 0


def _warm_start(model: DeepJSCC, path: Path) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise GenjsccError(f"--init-from {path}: no such file")
    own = model.state_dict()
    loaded = {k: v for k, v in load_file(str(path)).items()
              if k in own and own[k].shape == v.shape}
    model.load_state_dict(loaded, strict=False)
    print(f"warm start from {path}: {len(loaded)}/{len(own)} tensors", file=sys.stderr)


def _train(args, model, optimizer, gen, state, train, valid, snr_range, ckpt_path, device,
           tqdm) -> None:
    floor = args.lr_min / args.lr
    warmup = args.warmup / args.steps
    channel = _MixedChannel(args.rayleigh_fraction, gen)
    lo, hi = snr_range
    budget_s = args.minutes * 60 if args.minutes > 0 else math.inf
    start = time.perf_counter()
    base_s = state["elapsed_s"]  # training time of earlier calls
    last_save = state["step"]
    running = None
    model.train()
    with tqdm(total=args.steps, initial=state["step"], unit="step", file=sys.stderr,
              mininterval=10, desc=f"ratio {model.ratio}") as bar:
        while state["step"] < args.steps and time.perf_counter() - start < budget_s:
            set_lr(optimizer, args.lr * lr_factor((state["step"] + 1) / args.steps, floor,
                                                  warmup, args.schedule))
            x = random_crops(train, args.batch, args.crop, gen).to(device)
            snr = lo + (hi - lo) * torch.rand(args.batch, generator=gen)
            mse = train_step(model, optimizer, x, snr.to(device), channel, args.loss)
            state["step"] += 1
            psnr = -10 * math.log10(max(mse, 1e-10))
            running = psnr if running is None else 0.99 * running + 0.01 * psnr
            bar.update(1)
            if state["step"] % 20 == 0:
                bar.set_postfix(psnr=f"{running:.2f}dB", refresh=False)
            if state["step"] % args.valid_every == 0 or state["step"] == args.steps:
                state["elapsed_s"] = base_s + time.perf_counter() - start
                _validate(model, valid[:args.valid_images], state, running, optimizer,
                          ckpt_path.parent, bar)
            if state["step"] - last_save >= args.checkpoint_every:
                state["elapsed_s"] = base_s + time.perf_counter() - start
                _save(ckpt_path, model, optimizer, gen, state)
                last_save = state["step"]
    state["elapsed_s"] = base_s + time.perf_counter() - start
    _save(ckpt_path, model, optimizer, gen, state)


def _validate(model, valid, state, running, optimizer, run_dir, bar) -> None:
    res = evaluate(model, valid, VALID_SNR_DB)
    line = {"step": state["step"], "train_psnr_db": round(running, 3),
            "lr": optimizer.param_groups[0]["lr"],
            "elapsed_s": round(state["elapsed_s"], 1)}
    line.update({f"valid_psnr_{snr:g}db": round(r["psnr_db"], 3) for snr, r in res.items()})
    state["history"].append(line)
    with open(run_dir / "log.jsonl", "a") as log:
        log.write(json.dumps(line) + "\n")
    bar.write(f"step {state['step']}: valid PSNR "
              + ", ".join(f"{r['psnr_db']:.2f} dB @ {snr:g} dB" for snr, r in res.items()))


def _save(path: Path, model, optimizer, gen, state) -> None:
    """Atomic checkpoint, and the weights alone as RUN_DIR/model.safetensors."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": gen.get_state(), "state": state,
                "config": asdict(model.config)}, tmp)
    tmp.replace(path)  # a kill during the save leaves the previous checkpoint
    save_jscc(model, path.parent / "model.safetensors", _metadata(state))


def _command() -> str:
    return "genjscc train jscc " + " ".join(shlex.quote(a) for a in sys.argv[3:])


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    return {"batch": args.batch, "crop": args.crop, "snr_range": args.snr_range,
            "rayleigh_fraction": args.rayleigh_fraction, "lr": args.lr, "lr_min": args.lr_min,
            "steps": args.steps, "seed": args.seed, "warmup": args.warmup,
            "schedule": args.schedule, "loss": args.loss,
            "linear_lr_scale": args.linear_lr_scale}


def _metadata(state: dict) -> dict[str, str]:
    return {"steps": str(state["step"]), "train_seconds": f"{state['elapsed_s']:.0f}",
            "command": state["command"]}


def _export(args, model, name, state, valid, device) -> None:
    from genjscc import zoo

    images = valid[:args.eval_images] if args.eval_images > 0 else valid
    print(f"measuring {name} on {len(images)} validation images ...", file=sys.stderr)
    awgn = evaluate(model, images, EVAL_SNR_DB, "awgn", with_ms_ssim=True)
    rayleigh = evaluate(model, images, EVAL_SNR_DB, "rayleigh", with_ms_ssim=True)
    meta = _metadata(state)
    meta["valid_psnr_awgn"] = json.dumps({f"{s:g}": round(r["psnr_db"], 3)
                                          for s, r in awgn.items()})
    entry = zoo.export(
        name, "jscc", lambda path: save_jscc(model, path, meta),
        _card(name, model, state, awgn, rayleigh, len(images), args, device),
        description=(f"Deep JSCC (SNR-adaptive) ratio {model.ratio}, N={model.config.channels}, "
                     f"{model.num_parameters()} parameters, {state['step']} steps; "
                     f"{awgn[0.0]['psnr_db']:.2f} dB at 0 dB, {awgn[10.0]['psnr_db']:.2f} dB "
                     "at 10 dB (AWGN, BSDS500 test)"))
    print(f"wrote {entry.file} and {entry.card}; PSNR at 0 / 10 dB (AWGN): "
          f"{awgn[0.0]['psnr_db']:.2f} / {awgn[10.0]['psnr_db']:.2f} dB", file=sys.stderr)


def _arch_text(c: JSCCConfig) -> str:
    nl, inv = ("GDN", "inverse GDN") if c.nonlinearity == "gdn" else ("PReLU", "PReLU")
    enc = (f"3 x (conv 5x5 stride 2 + {nl} + SNR attention), conv 3x3 + {nl} + attention, "
           f"conv 3x3 -> {c.latent_channels} latent channels per 8x8 block")
    dec = f"mirrored (transposed convs, {inv}, attention)"
    if c.arch == "gdn":
        return f"encoder {enc}; decoder {dec}, sigmoid output"
    enc_part = (f"plus an encoder stack {enc}, added in units of each coefficient's std"
                if c.encoder_residual else "no encoder stack (a linear encoder)")
    return (f"hybrid: linear 8x8 block transform (initialized to the block PCA of the training "
            f"images) to {c.latent_channels} coefficients, {enc_part}; per-channel gains from a "
            "table over SNR (initialized to the MSE-optimal linear power allocation); the "
            "per-image normalization gain sent in-band on a +-1 checkerboard; decoder: LMMSE "
            f"estimate of the coefficients, inverse transform, plus a residual image from a "
            f"decoder stack {dec}; output clipped to [0, 1]")


def _card(name, model, state, awgn, rayleigh, num_images, args, device) -> str:
    c = model.config
    recipe = state.get("args", {})
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{cpu_name()}, {args.threads} thread(s)")
    crops = state["step"] * recipe.get("batch", args.batch)
    rows = "\n".join(
        f"| {snr:g} | {awgn[snr]['psnr_db']:.2f} | {awgn[snr]['ms_ssim']:.4f} | "
        f"{rayleigh[snr]['psnr_db']:.2f} | {rayleigh[snr]['ms_ssim']:.4f} |" for snr in awgn)
    resumed = "".join(f"| resumed with | `{cmd}` |\n" for cmd in state.get("resumed", []))
    exported = f"| measured and shipped with | `{_command()}` |\n" if args.export else ""
    init = f"| warm start from | `{state['init_from']}` |\n" if state.get("init_from") else ""
    last = state["history"][-1] if state["history"] else {}
    schedule = (f"warm-up {recipe.get('warmup', 500)} steps, then "
                + (f"constant {recipe.get('lr')}" if recipe.get("schedule") == "constant" else
                   f"cosine {recipe.get('lr')} -> {recipe.get('lr_min')}")
                + f" over {recipe.get('steps')} steps")
    loss = "MSE" if recipe.get("loss", "mse") == "mse" else "mean over crops of ln MSE"
    if c.arch == "hybrid":
        schedule += f"; the linear code at {recipe.get('linear_lr_scale')} x that rate"
    return f"""# {name}

SNR-adaptive Deep JSCC (Bourtsoulatze et al. 2019 with ADJSCC attention modules, Xu et al.
2021) for RGB images at bandwidth ratio **{model.ratio}**: {model.ratio} complex channel use per
source dimension, i.e. an H x W image becomes 3 H W x {model.ratio} complex symbols of average
energy 1 (per-image power normalization). Fully convolutional (sizes padded to multiples of 8).
Use it with `genjscc jscc-eval --ratio {model.ratio}` or `genjscc.core.jscc.load_model("{name}")`;
see docs/jscc.md.

## Configuration

| | |
|---|---|
| architecture | {_arch_text(c)} |
| feature channels N / attention hidden | {c.channels} / {c.af_hidden} |
| parameters | {model.num_parameters()} |
| training data | BSDS500 train/ ({state.get('train_images', '?')} photographs), random \
{recipe.get('crop')}x{recipe.get('crop')} crops with horizontal flips |
| training channel | SNR uniform in {recipe.get('snr_range')} dB per crop; AWGN, Rayleigh block \
fading for a share of {recipe.get('rayleigh_fraction')} |
| optimizer (schedule of the last call) | Adam, {loss} loss, batch {recipe.get('batch')}, \
{schedule} |
| steps done | {state['step']} (about {crops / 1e6:.2f} M crops) |
| last training PSNR (running mean) | {last.get('train_psnr_db', float('nan')):.2f} dB |
| wall time | {state['elapsed_s'] / 3600:.2f} h on {hardware} (shared 2-core machine) |
| command | `{state['command']}` |
{init}{resumed}{exported}
## Validation PSNR and MS-SSIM against SNR

{num_images} held-out photographs (BSDS500 test/, 481x321 or 321x481, coded whole), one noise
seed per SNR. SNR = Es/N0 per complex channel use (docs/conventions.md); Eb/N0 per 8-bit source
value is SNR - 10 log10(8 / {float(model.ratio):.4f}) = SNR - \
{10 * math.log10(8 / float(model.ratio)):.2f} dB. Rayleigh: one coefficient per image, perfect
CSI, zero-forcing, the encoder told the average SNR and the decoder the effective one.

| SNR (dB) | AWGN PSNR (dB) | AWGN MS-SSIM | Rayleigh PSNR (dB) | Rayleigh MS-SSIM |
|---|---|---|---|---|
{rows}
"""
