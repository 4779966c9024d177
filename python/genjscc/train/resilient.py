"""Train the loss-resilient token image codec (genjscc.core.resilient) on crops of photographs.

Data (a developer's input; the product never reads it): every image in a folder named
``train`` under DATA (--data, default $GENJSCC_DATA/images; BSDS500 train/, 200 photographs)
is decoded once into memory; each step draws --batch random --crop x --crop crops (random
image, position, horizontal flip). Held out: the images of folders named ``test`` or ``val``
(BSDS500 test/), never trained on, measured whole at the end.

Three phases, each with its own wall-time limit (minutes of this process):

1. --ae-minutes: analysis + FSQ + synthesis, MSE, AdamW at --lr with gradient clipping 1.0
   (FSQ saturates its tanh at higher rates);
2. --transformer-minutes: the masked token transformer on the frozen encoder's tokens of
   (window x patch)-pixel crops, a share of positions uniform in 0.05..0.99 masked per crop,
   cross-entropy on the masked ones;
3. --finetune-minutes: the synthesis alone on concealed codes (received tokens exact, the
   masked ones as the transformer's expected code; mask share uniform in 0..0.6, none for a
   third of the crops), so that it decodes expected codes as well as exact ones.

Then the coder's static integer frequency table is counted over the tokens of all training
images (whole, padded), each count + 1. Resumable: RUN_DIR/checkpoint.pt after every
--checkpoint-every steps and at each phase's end; --resume continues from it. When the last
phase ends (or at once with --export) the model is measured on --eval-images held-out images
and written to the zoo (zoo/weights/NAME.safetensors, card zoo/NAME.md, manifest) unless
--no-register.
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
from torch.nn import functional as F

from genjscc.core.resilient.model import ResilientConfig, ResilientModel, save_resilient
from genjscc.errors import GenjsccError
from genjscc.machine import cpu_name
from genjscc.train.data import default_data, require_data
from genjscc.train.jscc import load_uint8, random_crops, split_images

PHASES = ("ae", "transformer", "finetune", "done")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=default_data("images"),
                        help="folder with train/ and test/ images (default "
                        "$GENJSCC_DATA/images: %(default)s)")
    parser.add_argument("--name", default="resilient-p8", help="zoo name (%(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default resilient-runs/NAME)")
    parser.add_argument("--patch", type=int, default=8, choices=(8, 16),
                        help="pixels per token side (%(default)s)")
    parser.add_argument("--ae-minutes", type=float, default=35.0)
    parser.add_argument("--transformer-minutes", type=float, default=15.0)
    parser.add_argument("--finetune-minutes", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128, help="AE crop side in pixels")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--eval-images", type=int, default=20,
                        help="held-out images measured for the card (%(default)s)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export", action="store_true",
                        help="skip training: measure and export the checkpoint")
    parser.add_argument("--no-register", action="store_true",
                        help="do not write to the zoo")


def run(args: argparse.Namespace) -> int:
    if min(args.threads, args.batch, args.checkpoint_every) < 1:
        raise GenjsccError("--threads, --batch and --checkpoint-every must be >= 1")
    if args.crop % args.patch or args.crop < 2 * args.patch:
        raise GenjsccError(f"--crop must be a multiple of --patch {args.patch}, at least "
                           f"{2 * args.patch}")
    torch.set_num_threads(args.threads)  # a command: the process is ours
    run_dir = args.out or Path("resilient-runs") / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    train_files, valid_files = split_images(require_data(args.data, "images"))
    torch.manual_seed(args.seed)
    stages = int(math.log2(args.patch))
    model = ResilientModel(ResilientConfig(patch=args.patch, channels=[48, 96, 128, 160][:stages]))
    gen = torch.Generator().manual_seed(args.seed)
    state: dict[str, Any] = {"phase": "ae", "step": 0, "elapsed": {}, "command": _command(),
                             "history": [], "train_images": len(train_files)}
    opt_state = None
    if args.resume or args.export:
        if not ckpt.is_file():
            raise GenjsccError(f"no checkpoint {ckpt} to resume or export from")
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        model = ResilientModel(ResilientConfig(**saved["config"]))
        model.load_state_dict(saved["model"])
        gen.set_state(saved["generator"])
        state, opt_state = saved["state"], saved.get("optimizer")
    train = load_uint8(train_files)
    if not args.export:
        print(f"resilient codec: {model.num_parameters()} parameters, {len(train)} training "
              f"images, run dir {run_dir}", file=sys.stderr)
        while state["phase"] != "done":
            _phase(args, model, gen, state, train, ckpt, opt_state)
            opt_state = None
    if not args.no_register:
        _export(args, model, state, train, load_uint8(valid_files))
    return 0


def _phase(args, model: ResilientModel, gen, state, train, ckpt, opt_state) -> None:
    phase = state["phase"]
    minutes = {"ae": args.ae_minutes, "transformer": args.transformer_minutes,
               "finetune": args.finetune_minutes}[phase]
    params = {"ae": list(model.analysis.parameters()) + list(model.synthesis.parameters()),
              "transformer": list(model.transformer.parameters()),
              "finetune": list(model.synthesis.parameters())}[phase]
    lr = args.lr if phase != "finetune" else args.lr / 4
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0 if phase != "transformer" else 0.01)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    budget = minutes * 60
    done = state["elapsed"].get(phase, 0.0)
    start = time.perf_counter()
    running = None
    step_fn = {"ae": _ae_step, "transformer": _transformer_step, "finetune": _finetune_step}[phase]
    model.train()
    while done + time.perf_counter() - start < budget:
        frac = min(1.0, (done + time.perf_counter() - start) / budget)
        for g in opt.param_groups:  # cosine decay over the phase's wall time
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        loss = step_fn(args, model, gen, train)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["step"] += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if state["step"] % 50 == 0:
            state["elapsed"][phase] = done + time.perf_counter() - start
            line = {"phase": phase, "step": state["step"], "loss": round(running, 5),
                    "elapsed_s": round(state["elapsed"][phase], 1)}
            if phase != "transformer":
                line["psnr_db"] = round(-10 * math.log10(max(running, 1e-10)), 3)
            state["history"].append(line)
            with open(ckpt.parent / "log.jsonl", "a") as log:
                log.write(json.dumps(line) + "\n")
        if state["step"] % args.checkpoint_every == 0:
            state["elapsed"][phase] = done + time.perf_counter() - start
            _save(ckpt, model, gen, state, opt)
    state["elapsed"][phase] = done + time.perf_counter() - start
    state["phase"] = PHASES[PHASES.index(phase) + 1]
    state.setdefault("phase_steps", {})[phase] = state["step"]
    _save(ckpt, model, gen, state, None)


def _ae_step(args, model: ResilientModel, gen, train) -> torch.Tensor:
    x = random_crops(train, args.batch, args.crop, gen)
    y = model.synthesis(model.fsq(model.analysis(x)))
    return F.mse_loss(y, x)


def _window_tokens(args, model: ResilientModel, gen, train) -> torch.Tensor:
    side = model.config.window * model.config.patch
    x = random_crops(train, args.batch, side, gen)
    with torch.no_grad():
        return model.tokens(x).reshape(args.batch, -1), x


def _random_mask(shape, lo: float, hi: float, gen) -> torch.Tensor:
    """bool ``shape`` (True = masked): per row a share uniform in [lo, hi] masked at random."""
    share = lo + (hi - lo) * torch.rand(shape[0], 1, generator=gen)
    return torch.rand(shape, generator=gen) < share


def _transformer_step(args, model: ResilientModel, gen, train) -> torch.Tensor:
    tokens, _ = _window_tokens(args, model, gen, train)
    masked = _random_mask(tokens.shape, 0.05, 0.99, gen)
    masked[:, 0] |= ~masked.any(1)  # at least one target per row
    inputs = torch.where(masked, torch.full_like(tokens, model.config.vocab), tokens)
    logits = model.transformer(inputs)
    return F.cross_entropy(logits[masked], tokens[masked])


def _finetune_step(args, model: ResilientModel, gen, train) -> torch.Tensor:
    tokens, x = _window_tokens(args, model, gen, train)
    masked = _random_mask(tokens.shape, 0.0, 0.6, gen)
    masked[: args.batch // 3] = False
    w = model.config.window
    with torch.no_grad():
        v = model.config.vocab
        probs = torch.softmax(model.transformer(torch.where(masked, v, tokens)), -1)
        expected = probs @ model.fsq.codebook()  # [B, n, C]
        exact = model.fsq.tokens_to_codes(tokens.view(-1, w, w)).flatten(2).transpose(1, 2)
        codes = torch.where(masked.unsqueeze(-1), expected, exact)
        codes = codes.transpose(1, 2).reshape(args.batch, -1, w, w)
    return F.mse_loss(model.synthesis(codes), x)


def _save(path: Path, model: ResilientModel, gen, state, opt) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "generator": gen.get_state(), "state": state,
                "config": asdict(model.config),
                "optimizer": opt.state_dict() if opt is not None else None}, tmp)
    tmp.replace(path)  # a kill during the save leaves the previous checkpoint


def _command() -> str:
    return "genjscc train resilient " + " ".join(shlex.quote(a) for a in sys.argv[3:])


def token_counts(model: ResilientModel, images: list[torch.Tensor]) -> torch.Tensor:
    """How often each token occurs over whole images (uint8 ``[3, H, W]``), int64 ``[V]``."""
    from genjscc.core.resilient.codec import pad_to_patch

    counts = torch.zeros(model.config.vocab, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for img in images:
            x = pad_to_patch(img.float() / 255.0, model.config.patch)
            counts += torch.bincount(model.tokens(x.unsqueeze(0)).flatten(),
                                     minlength=model.config.vocab)
    return counts


def _export(args, model: ResilientModel, state, train, valid) -> None:
    from genjscc import zoo
    from genjscc.core.resilient.codec import ResilientCodec, measure
    from genjscc.core.resilient.packets import frequency_table

    model.eval()
    freqs = frequency_table(token_counts(model, train) + 1)
    codec = ResilientCodec(model, freqs)
    images = valid[: args.eval_images] if args.eval_images > 0 else valid
    print(f"measuring on {len(images)} held-out images ...", file=sys.stderr)
    stats = measure(codec, [v.float() / 255.0 for v in images])
    meta = {"steps": str(state["step"]), "command": state["command"],
            "train_seconds": f"{sum(state['elapsed'].values()):.0f}"}
    entry = zoo.export(
        args.name, "resilient", lambda p: save_resilient(model, freqs, p, meta),
        _card(args, model, state, stats, len(images)),
        description=(f"loss-resilient token image codec, {model.config.patch}x"
                     f"{model.config.patch} FSQ {model.config.levels} tokens, "
                     f"{model.num_parameters()} parameters; {stats['psnr_db']:.2f} dB at "
                     f"{stats['bpp']:.3f} bpp without loss (BSDS500 test)"))
    print(f"wrote {entry.file}: {json.dumps(stats)}", file=sys.stderr)


def _card(args, model: ResilientModel, state, stats, num_images: int) -> str:
    c = model.config
    el = state["elapsed"]
    concealed = ", ".join(f"{k}: {v:.2f} dB" for k, v in stats["concealed_psnr_db"].items())
    hours = sum(el.values()) / 3600
    return f"""# {args.name}

Loss-resilient learned image codec (docs/resilient.md): one FSQ token per {c.patch}x{c.patch}
patch (levels {c.levels}, {c.vocab} codes), range-coded with a static integer frequency table
(exact on every machine), packets that decode in any subset, and a masked token transformer
that conceals lost tokens with their expected code. Use it with `genjscc loss-eval` or
`genjscc.core.resilient.load_codec("{args.name}")`.

## Configuration

| | |
|---|---|
| analysis | conv 5x5 / 3x3 stride 2 (channels {c.channels}), GELU, residual block, 1x1 to \
{len(c.levels)} channels, FSQ |
| synthesis | conv 3x3, residual block, transposed conv 4x4 stride 2 per stage (mirrored) |
| transformer | {c.depth} pre-norm layers, width {c.dim}, {c.heads} heads, windows of \
{c.window}x{c.window} tokens, learned positions |
| parameters | {model.num_parameters()} |
| coder | static table: token counts over the training images + 1, integers summing to 2**24 |
| training data | BSDS500 train/ ({state.get('train_images', '?')} photographs), random crops \
with flips |
| phases (wall time) | AE {el.get('ae', 0) / 60:.1f} min, transformer \
{el.get('transformer', 0) / 60:.1f} min, synthesis fine-tune on concealed codes \
{el.get('finetune', 0) / 60:.1f} min |
| steps | {state['step']} in all ({json.dumps(state.get('phase_steps', {}))}) |
| wall time | {hours:.2f} h on {cpu_name()}, {args.threads} thread(s) (shared 2-core machine) |
| command | `{state['command']}` |

## Measured (held-out)

{num_images} photographs of BSDS500 test/ (481x321 or 321x481), coded whole, no loss:
PSNR **{stats['psnr_db']:.2f} dB**, MS-SSIM {stats['ms_ssim']:.4f}, **{stats['bits_per_token']:.3f}
bits per token** ({stats['bpp']:.4f} bpp of range-coded tokens, before packet headers).
Concealment (tokens lost at random, the rest exact): {concealed}.

## Status

A CPU-only, short training run to fit a development session; a GPU run of the same recipe
(hours, larger crops and widths) would gain several dB. The data came from the project's
training set (`$GENJSCC_DATA`).
"""
