"""Train an ECCT decoder (genjscc.core.ecct) for a shipped code on the all-zero codeword.

Recipe (Choukroun and Wolf 2022, adapted): every sample is the all-zero codeword sent as BPSK
(+1) over real AWGN at its own Eb/N0, drawn uniformly from --ebno-range (dB, per information
bit, noise variance ``1 / (2 R Eb/N0)``); the model reads the LLRs ``2 y / noise_var`` and is
trained with binary cross-entropy to predict which hard decisions are wrong (the sign of the
multiplicative noise). Adam, cosine decay from --lr to --lr-min over EPOCHS x STEPS_PER_EPOCH
(a resume with more --epochs continues on the longer schedule from the saved step).
A linear code with a symmetric decoder is as good on every codeword, and ECCT's inputs (|llr|,
syndrome) do not depend on the codeword sent, so the all-zero word is enough.

Resumable: RUN_DIR/checkpoint.pt (model, optimizer, scheduler, RNG, epoch, elapsed time) and
RUN_DIR/model.safetensors are written after every epoch, and a line per epoch goes to
RUN_DIR/log.jsonl; --resume continues from the checkpoint. When the last epoch is done (or
with --export, from the latest checkpoint without training) the model is measured through the
BER engine on random codewords at 4/5/6 dB beside BP-50, and written to the zoo
(zoo/weights/ecct-<code>.safetensors, card zoo/ecct-<code>.md, manifest entry) unless
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

from genjscc.core.ecct.decoder import zoo_name
from genjscc.core.ecct.model import ARCH_NAMES, ARCHS, ECCT, ECCTConfig, ECCTDecoder, save_ecct
from genjscc.core.fec.codes import Code
from genjscc.core.fec.decoders import Decoder
from genjscc.errors import GenjsccError
from genjscc.machine import cpu_name
from genjscc.train import parse_range as parse_training_range

EVAL_EBNO = (4.0, 5.0, 6.0)

# Published -ln(BER) at 4/5/6 dB (Choukroun and Wolf 2022, Table 1) for the card.
PAPER_ECCT: dict[str, dict[tuple[int, int], tuple[float, float, float]]] = {
    "POLAR_N64_K32": {(2, 32): (4.27, 5.44, 6.95), (6, 32): (5.71, 7.63, 9.94),
                      (6, 128): (6.99, 9.44, 12.32)},
    "BCH_N63_K45": {(6, 128): (5.60, 7.79, 10.93)},
    "LDPC_N49_K24": {(6, 128): (6.13, 8.71, 12.10)},
}
PAPER_BP: dict[str, tuple[float, float, float]] = {"POLAR_N64_K32": (4.26, 5.38, 6.50),
                                                   "LDPC_N49_K24": (6.23, 8.19, 11.72)}


_ARCH_CITE = {"ecct": "ECCT decoder (Choukroun and Wolf, NeurIPS 2022)",
              "crossmpt": "CrossMPT decoder (Park et al., ICLR 2025, a variant of ECCT)"}
_ARCH_TEXT = {"ecct": "ECCT: pre-LayerNorm self-attention over the n + m tokens, masked by H",
              "crossmpt": "CrossMPT: bits cross-attend their checks, then checks their bits "
                          "(weights shared by both halves of a layer)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--code", required=True, help="shipped code name, e.g. POLAR_N64_K32")
    parser.add_argument("--layers", type=int, default=2, help="encoder layers N (%(default)s)")
    parser.add_argument("--dim", type=int, default=32, help="model width d (%(default)s)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads (%(default)s)")
    parser.add_argument("--arch", choices=ARCHS, default="ecct",
                        help="ecct: masked self-attention (the paper); crossmpt: bit/check "
                             "cross-attention (CrossMPT, Park et al. 2025) (%(default)s)")
    parser.add_argument("--epochs", type=int, default=20, help="%(default)s")
    parser.add_argument("--steps-per-epoch", type=int, default=1000, help="%(default)s")
    parser.add_argument("--batch", type=int, default=128, help="%(default)s")
    parser.add_argument("--ebno-range", default="2:7", metavar="LO:HI",
                        help="training Eb/N0 range in dB, uniform per sample (%(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (%(default)s)")
    parser.add_argument("--lr-min", type=float, default=1e-6, help="final learning rate")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (%(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default ecct-runs/<code>-N<layers>-d<dim>, "
                             "-crossmpt appended for that arch)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument("--export", action="store_true",
                        help="no training: measure and ship the latest checkpoint of RUN_DIR")
    parser.add_argument("--no-register", action="store_true",
                        help="do not write into the zoo (weights, card, manifest)")
    parser.add_argument("--eval-min-errors", type=int, default=100,
                        help="block errors per Eb/N0 point in the final measurement")
    parser.add_argument("--eval-max-words", type=int, default=200_000,
                        help="words per Eb/N0 point at most in the final measurement")
    parser.add_argument("--bp-json", type=Path, default=None,
                        help="BP-50 results (`genjscc ber ... --json`) to quote instead of "
                        "measuring them")


def parse_range(text: str) -> tuple[float, float]:
    """``"2:7"`` -> ``(2.0, 7.0)``: the ``--ebno-range`` in dB."""
    return parse_training_range(text, "--ebno-range", "2:7")


def training_batch(n: int, code_rate: float, batch: int, ebno_range: tuple[float, float],
                   gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """LLRs ``[batch, n]`` of the all-zero codeword (BPSK +1) over real AWGN.

    Eb/N0 per sample is uniform in ``ebno_range`` (dB); ``noise_var = 1 / (2 R Eb/N0)`` per
    real dimension (Es = 1, docs/conventions.md), ``llr = 2 y / noise_var``.
    """
    lo, hi = ebno_range
    ebno_db = lo + (hi - lo) * torch.rand(batch, 1, generator=gen, device=device)
    noise_var = 1.0 / (2.0 * code_rate * 10.0 ** (ebno_db / 10.0))
    y = 1.0 + noise_var.sqrt() * torch.randn(batch, n, generator=gen, device=device)
    return 2.0 * y / noise_var


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                    floor: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of every learning rate from its initial value to ``floor`` times it.

    A function of the global step, so that a resume with more ``--epochs`` (a larger
    ``total_steps``) continues on the longer schedule instead of restarting it.
    """
    def factor(step: int) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps)
                                                         / max(total_steps, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_steps(model: ECCT, optimizer: torch.optim.Optimizer, scheduler: Any, steps: int,
                code_rate: float, batch: int, ebno_range: tuple[float, float],
                gen: torch.Generator, bar: Any = None) -> dict[str, float]:
    """``steps`` Adam steps; returns mean loss and the training BER (all n bits) seen."""
    device = model.H.device
    model.train()
    loss_sum = errors = bits = 0.0
    for step in range(steps):
        llr = training_batch(model.n, code_rate, batch, ebno_range, gen, device)
        flipped = (llr < 0).float()  # all-zero word: a negative LLR is a wrong hard decision
        logits = model(llr)
        loss = F.binary_cross_entropy_with_logits(logits, flipped)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item()
        errors += float(model.decide(llr, logits.detach()).sum())
        bits += llr.numel()
        if bar is not None:
            ber = max(errors, 0.5) / bits  # half an error when none was seen yet
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / (step + 1):.4f}",
                                neg_ln_ber=f"{-math.log(ber):.2f}", refresh=False)
    ber = errors / max(bits, 1)
    return {"loss": loss_sum / max(steps, 1), "ber": ber,
            "neg_ln_ber": -math.log(ber) if ber > 0 else math.inf}


def _run_dir(args: argparse.Namespace) -> Path:
    suffix = "" if args.arch == "ecct" else f"-{args.arch}"
    return args.out or Path("ecct-runs") / f"{args.code}-N{args.layers}-d{args.dim}{suffix}"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genjscc.core.fec.codes import get_code

    torch.set_num_threads(max(1, args.threads))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenjsccError("--device cuda: no CUDA device is available; use --device cpu")
    code = get_code(args.code)
    ebno_range = parse_range(args.ebno_range)
    config = ECCTConfig(num_layers=args.layers, d_model=args.dim, num_heads=args.heads,
                        arch=args.arch)
    run_dir = _run_dir(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"

    torch.manual_seed(args.seed)
    model = ECCT(code.H, config).to(device)
    total = args.epochs * args.steps_per_epoch
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = cosine_schedule(optimizer, total, args.lr_min / args.lr)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    state = {"epoch": 0, "elapsed_s": 0.0, "command": _command(), "history": []}
    if args.resume or args.export:
        if not ckpt_path.is_file():
            raise GenjsccError(f"no checkpoint {ckpt_path} to resume or export from")
        saved = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ECCTConfig(**saved["config"]) != config or saved["code"] != code.name:
            raise GenjsccError(f"{ckpt_path} holds {saved['code']} {saved['config']}, not "
                               f"{code.name} {asdict(config)}: use the same --code/--layers/"
                               "--dim/--heads/--arch, or another --out")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
            # the schedule of this call's --epochs, at the saved step
            group["lr"] = group["initial_lr"] * factor(scheduler.last_epoch)
        gen.set_state(saved["generator"].to(gen.get_state().device))
        state = saved["state"]
        if not args.export:
            state.setdefault("resumed", []).append(_command())
    if not args.export:
        print(f"ECCT {code.name}: {config}, {model.num_parameters()} parameters, run dir "
              f"{run_dir}", file=sys.stderr)
        while state["epoch"] < args.epochs:
            start = time.perf_counter()
            with tqdm(total=args.steps_per_epoch, desc=f"epoch {state['epoch'] + 1}/"
                      f"{args.epochs}", unit="step", file=sys.stderr, mininterval=5) as bar:
                stats = train_steps(model, optimizer, scheduler, args.steps_per_epoch,
                                    code.code_rate, args.batch, ebno_range, gen, bar)
            state["epoch"] += 1
            state["elapsed_s"] += time.perf_counter() - start
            stats.update(epoch=state["epoch"], elapsed_s=round(state["elapsed_s"], 1),
                         lr=scheduler.get_last_lr()[0])
            state["history"].append(stats)
            _save_checkpoint(ckpt_path, model, optimizer, scheduler, gen, state, config, code)
            save_ecct(model, run_dir / "model.safetensors", _metadata(code, state))
            with open(run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(stats) + "\n")
    if not args.no_register:
        _export(args, model, code, state, device)
    return 0


def _command() -> str:
    return "genjscc train ecct " + " ".join(shlex.quote(a) for a in sys.argv[3:])


def _metadata(code: Code, state: dict) -> dict[str, str]:
    return {"code": code.name, "epochs": str(state["epoch"]),
            "train_seconds": f"{state['elapsed_s']:.0f}", "command": state["command"]}


def _save_checkpoint(path: Path, model: ECCT, optimizer: Any, scheduler: Any,
                     gen: torch.Generator, state: dict, config: ECCTConfig, code: Code) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": gen.get_state(),
                "state": state, "config": asdict(config), "code": code.name}, tmp)
    tmp.replace(path)  # atomic: a kill during the save leaves the previous checkpoint


def measure(code: Code, decoder: Decoder, args: argparse.Namespace,
            device: torch.device) -> list[float]:
    """-ln(BER over all n codeword bits) at 4/5/6 dB through the BER engine."""
    from genjscc.core.sim.ber import simulate_ber

    points = simulate_ber(code, decoder, EVAL_EBNO, min_errors=args.eval_min_errors,
                          max_words=args.eval_max_words, seed=1, device=device, progress=None)
    return [(-math.log(p.ber_codeword) if p.ber_codeword > 0 else math.inf) for p in points]


def _export(args: argparse.Namespace, model: ECCT, code: Code, state: dict,
            device: torch.device) -> None:
    from genjscc import zoo
    from genjscc.core.fec.decoders import make_decoder

    name = zoo_name(code.name)
    print(f"measuring {name} at {EVAL_EBNO} dB ...", file=sys.stderr)
    ecct = measure(code, ECCTDecoder(model.eval()), args, device)
    if args.bp_json is not None:
        rows = json.loads(args.bp_json.read_text())
        by_ebno = {float(r["ebno_db"]): r["ber_codeword"] for r in rows}
        bp = [-math.log(by_ebno[e]) if by_ebno.get(e) else math.nan for e in EVAL_EBNO]
    else:
        bp = measure(code, make_decoder("bp", code, num_iters=50), args, device)
    c = model.config
    entry = zoo.export(
        name, "ecct", lambda path: save_ecct(model, path, _metadata(code, state)),
        _card(name, model, code, state, ecct, bp, args, device),
        description=(f"{ARCH_NAMES[c.arch]} decoder for {code.name}, N={c.num_layers} "
                     f"d={c.d_model}, "
                     f"{model.num_parameters()} parameters, {state['epoch']} epochs"))
    print(f"wrote {entry.file} and {entry.card}; -ln(BER) 4/5/6 dB: "
          + " / ".join(f"{v:.2f}" for v in ecct), file=sys.stderr)


def _fmt(values: Any) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "n/a"


def _card(name: str, model: ECCT, code: Code, state: dict, ecct: list[float], bp: list[float],
          args: argparse.Namespace, device: torch.device) -> str:
    c = model.config
    hist = state["history"]
    samples = sum(1 for _ in hist) * args.steps_per_epoch * args.batch
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{cpu_name()}, {args.threads} thread(s)")
    paper = PAPER_ECCT.get(code.name, {})
    paper_rows = "\n".join(f"| ECCT N={n} d={d} (published, 128 M samples) | {_fmt(v)} |"
                           for (n, d), v in sorted(paper.items()))
    paper_bp = PAPER_BP.get(code.name)
    return f"""# {name}

{_ARCH_CITE[c.arch]} for {code.name} (n={code.n}, k={code.k},
H with m={code.m} rows), trained by `genjscc train ecct`. Input: LLRs `ln P(0)/P(1)` (see
docs/ecct.md); use it as `genjscc ber --code {code.name} --decoder ecct --model {name}`.

## Configuration

| | |
|---|---|
| architecture | {_ARCH_TEXT[c.arch]} |
| layers N / width d / heads / FFN | {c.num_layers} / {c.d_model} / {c.num_heads} / \
{c.ffn_mult}d GELU |
| parameters | {model.num_parameters()} |
| training | all-zero codeword, Eb/N0 uniform in {args.ebno_range} dB per sample, batch \
{args.batch}, Adam, cosine {args.lr:g} -> {args.lr_min:g} |
| epochs x steps | {state['epoch']} x {args.steps_per_epoch} (about {samples / 1e6:.2f} M samples) |
| final training loss | {hist[-1]['loss']:.4f} |
| wall time | {state['elapsed_s'] / 60:.1f} min on {hardware} (shared 2-core machine) |
| command | `{state['command']}` |
{"".join(f"| resumed with | `{cmd}` |" + chr(10) for cmd in state.get("resumed", []))}\
{f"| measured and shipped with | `{_command()}` |" + chr(10) if args.export else ""}
## Measured -ln(BER) (all n codeword bits, random codewords, BPSK over AWGN)

Eb/N0 4 / 5 / 6 dB, `genjscc ber` engine, at least {args.eval_min_errors} block errors or \
{args.eval_max_words} words per point.

| decoder | -ln(BER) at 4 / 5 / 6 dB |
|---|---|
| this model | {_fmt(ecct)} |
| BP, 50 iterations (measured here) | {_fmt(bp)} |
{f"| BP, 50 iterations (published) | {_fmt(paper_bp)} |" + chr(10) if paper_bp else ""}\
{paper_rows}

This is {samples / 128e6 * 100:.2f} % of the published training budget (1000 epochs x 1000
steps x 128 samples); see docs/ecct.md for how to continue training (`--resume` with more
`--epochs` continues on the longer cosine schedule from the current step).
"""
