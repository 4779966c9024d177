"""Train the DeepSC-class text JSCC (genjscc.core.text.model) on one-sentence-per-line text.

Data (a developer's input; the product never reads it): --data, a text file with one sentence
per line (default $GENJSCC_DATA/text/general-en/sentences.txt: 198k sentences, lowercase,
letters only, 4-30 words, the form DeepSC trains on). The byte-level BPE tokenizer is learned
from the same file first (training data only). Validation: --valid, another sentence file
(europarl-dev: never trained on), scored by BLEU-1 over AWGN at 6 and 12 dB every
--valid-every steps and, at the end, BLEU-1/BLEU-4/exact at several SNRs on AWGN and Rayleigh
for the model card.

Each sentence goes through its own channel: SNR uniform in --snr-range (dB, Es/N0 per complex
channel use), AWGN, or with probability --rayleigh-fraction Rayleigh block fading (one
coefficient per sentence, perfect CSI, equalized; the decoder is told the effective SNR).
Loss: token cross-entropy. Adam, linear warm-up then cosine decay over the schedule, whose
length is --steps or --minutes of training time, whichever ends first (a wall-time budget on a
busy machine). Resumable from RUN_DIR/checkpoint.pt (--resume); --export ships the latest
checkpoint without training.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from genjscc.core.text.model import TextJSCC, TextJSCCConfig, save_text_jscc
from genjscc.core.text.tokenizer import PAD_ID, TextTokenizer, train_tokenizer
from genjscc.core.weights_file import state_tensors
from genjscc.errors import GenjsccError
from genjscc.machine import cpu_name
from genjscc.train import parse_range
from genjscc.train.data import default_data, require_data

NAME = "text-jscc-small"
VALID_SNR_DB = (6.0, 12.0)
EVAL_SNR_DB = (0.0, 3.0, 6.0, 9.0, 12.0, 18.0)
SHIPPED_DTYPE = torch.float16  # zoo file precision: the analog code loses nothing measurable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = default_data("text")
    parser.add_argument("--data", type=Path,
                        default=data / "general-en" / "sentences.txt" if data else None,
                        help="training sentences, one per line (default $GENJSCC_DATA/text/"
                        "general-en/sentences.txt: %(default)s)")
    parser.add_argument("--valid", type=Path, default=None,
                        help="held-out sentences for validation and the card (never trained on)")
    parser.add_argument("--valid-sentences", type=int, default=200,
                        help="sentences of --valid for the periodic check (%(default)s)")
    parser.add_argument("--eval-sentences", type=int, default=500,
                        help="sentences of --valid for the card (%(default)s)")
    parser.add_argument("--vocab", type=int, default=1024,
                        help="BPE ids (%(default)s: about 2.1 tokens per Europarl word; a "
                        "small vocabulary lets each token be seen often in a short training)")
    parser.add_argument("--d-model", type=int, default=128, help="%(default)s")
    parser.add_argument("--layers", type=int, default=3, help="per side (%(default)s)")
    parser.add_argument("--heads", type=int, default=8, help="%(default)s")
    parser.add_argument("--ff", type=int, default=512, help="feed-forward width (%(default)s)")
    parser.add_argument("--channel-uses-per-token", type=int, default=4,
                        help="complex channel uses per token (%(default)s)")
    parser.add_argument("--max-tokens", type=int, default=96, help="%(default)s")
    parser.add_argument("--steps", type=int, default=20_000, help="schedule length (%(default)s)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="training-time budget; the schedule ends when it is spent "
                        "(0 = --steps only)")
    parser.add_argument("--batch", type=int, default=64, help="sentences per step (%(default)s)")
    parser.add_argument("--snr-range", default="0:20", metavar="LO:HI",
                        help="training SNR range in dB, uniform per sentence (%(default)s)")
    parser.add_argument("--rayleigh-fraction", type=float, default=0.5,
                        help="share of sentences sent through Rayleigh fading (%(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (%(default)s)")
    parser.add_argument("--lr-min", type=float, default=2e-5, help="final learning rate")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps (%(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default text-jscc-runs/NAME)")
    parser.add_argument("--name", default=NAME, help="zoo name (%(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument("--export", action="store_true",
                        help="no training: measure and ship the latest checkpoint of RUN_DIR")
    parser.add_argument("--no-register", action="store_true",
                        help="do not write into the zoo (weights, card, manifest)")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="%(default)s steps")
    parser.add_argument("--valid-every", type=int, default=250, help="%(default)s steps")


def read_sentences(path: Path, option: str) -> list[str]:
    """Non-empty lines of ``path``, stripped."""
    if not path.is_file():
        raise GenjsccError(f"{option} {path}: no such file (one sentence per line)")
    lines = [s.strip() for s in path.read_text(encoding="utf-8").splitlines()]
    lines = [s for s in lines if s]
    if not lines:
        raise GenjsccError(f"{option} {path}: no sentences")
    return lines


def batch_tokens(ids: list[list[int]]) -> torch.Tensor:
    """Right-padded ``[B, T]`` token tensor (``PAD_ID`` after each sentence)."""
    width = max(len(s) for s in ids)
    out = torch.full((len(ids), width), PAD_ID, dtype=torch.long)
    for row, s in enumerate(ids):
        out[row, :len(s)] = torch.tensor(s)
    return out


class MixedChannel:
    """AWGN for most sentences, Rayleigh block fading (equalized) for a share of them."""

    def __init__(self, rayleigh_fraction: float):
        from genjscc.core.jscc.channel import JSCCChannel

        self.fraction = rayleigh_fraction
        self.awgn, self.rayleigh = JSCCChannel("awgn"), JSCCChannel("rayleigh")

    def __call__(self, x: torch.Tensor, snr_db: torch.Tensor, gen: torch.Generator):
        y, snr_rx = self.awgn(x, snr_db, gen)
        pick = torch.rand(x.shape[0], generator=gen) < self.fraction
        if bool(pick.any()):
            y_r, s_r = self.rayleigh(x[pick], snr_db[pick], gen)
            y, snr_rx = y.clone(), snr_rx.clone()
            y[pick], snr_rx[pick] = y_r, s_r
        return y, snr_rx


@torch.no_grad()
def evaluate(model: TextJSCC, sentences: list[str], snrs: tuple[float, ...],
             channel: str = "awgn", seed: int = 1) -> dict[float, dict[str, float]]:
    """BLEU-1, BLEU-4 and exact fraction of ``sentences`` at each Es/N0 (fixed noise seed)."""
    from genjscc.core.jscc.channel import JSCCChannel
    from genjscc.core.text.metrics import bleu, exact_fraction

    model.eval()
    ch = JSCCChannel(channel)
    out = {}
    for snr in snrs:
        gen = torch.Generator().manual_seed(seed)
        hyps = []
        for i in range(0, len(sentences), 64):
            chunk = sentences[i:i + 64]
            ids = [model.tokenizer.encode(s)[:model.config.max_tokens] for s in chunk]
            tokens = batch_tokens(ids)
            y, snr_rx = ch(model.encode(tokens), snr, gen)
            pred = model.decode_logits(y, snr_rx, tokens != PAD_ID).argmax(-1)
            hyps += [model.tokenizer.decode(p[:len(s)].tolist())
                     for p, s in zip(pred, ids, strict=True)]
        out[snr] = {"bleu1": bleu(sentences, hyps, 1), "bleu4": bleu(sentences, hyps, 4),
                    "exact": exact_fraction(sentences, hyps)}
    model.train()
    return out


def lr_factor(progress: float, warmup: float, floor: float) -> float:
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    done = min(1.0, (progress - warmup) / max(1e-9, 1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done))


def run(args: argparse.Namespace) -> int:
    if min(args.threads, args.steps, args.batch, args.checkpoint_every, args.valid_every) < 1:
        raise GenjsccError("--threads, --steps, --batch, --checkpoint-every, --valid-every "
                           "must be >= 1")
    if not 0 <= args.rayleigh_fraction <= 1:
        raise GenjsccError("--rayleigh-fraction must be in [0, 1]")
    torch.set_num_threads(args.threads)  # a command: the process is ours
    data = require_data(args.data, "text")
    snr_range = parse_range(args.snr_range, "--snr-range", "0:20")
    run_dir = args.out or Path("text-jscc-runs") / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    valid = read_sentences(args.valid, "--valid") if args.valid else []

    if args.resume or args.export:
        if not ckpt_path.is_file():
            raise GenjsccError(f"no checkpoint {ckpt_path} to resume or export from")
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model = TextJSCC(TextJSCCConfig(**saved["config"]), TextTokenizer(saved["tokenizer"]))
        model.load_state_dict(saved["model"])
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        gen = torch.Generator()
        gen.set_state(saved["generator"])
    else:
        torch.manual_seed(args.seed)
        t0 = time.perf_counter()
        tok = train_tokenizer(read_sentences(data, "--data"), args.vocab)
        print(f"tokenizer: {tok.vocab_size} ids in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        config = TextJSCCConfig(vocab_size=tok.vocab_size, d_model=args.d_model,
                                heads=args.heads, layers=args.layers, ff=args.ff,
                                channel_uses_per_token=args.channel_uses_per_token,
                                max_tokens=args.max_tokens)
        model = TextJSCC(config, tok)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        gen = torch.Generator().manual_seed(args.seed)
        state = {"step": 0, "elapsed_s": 0.0, "history": [], "command": _command(),
                 "data": str(data), "args": _recipe(args)}
    if not args.export:
        sentences = read_sentences(data, "--data")
        ids = [s for s in (model.tokenizer.encode(x) for x in sentences)
               if 0 < len(s) <= model.config.max_tokens]
        state["train_sentences"] = len(ids)
        print(f"text JSCC: {model.num_parameters()} parameters, {len(ids)} training sentences, "
              f"run dir {run_dir}", file=sys.stderr)
        _train(args, model, optimizer, gen, state, ids, valid, snr_range, ckpt_path)
    if not args.no_register:
        _export(args, model, state, valid)
    return 0


def _train(args, model, optimizer, gen, state, ids, valid, snr_range, ckpt_path) -> None:
    channel = MixedChannel(args.rayleigh_fraction)
    budget = args.minutes * 60 if args.minutes > 0 else math.inf
    lo, hi = snr_range
    start = time.perf_counter()
    base = state["elapsed_s"]
    rng = random.Random(args.seed + state["step"])
    running = None
    model.train()
    while True:
        elapsed = base + time.perf_counter() - start
        progress = max(state["step"] / args.steps, elapsed / budget)
        if progress >= 1:
            break
        lr = args.lr * lr_factor(progress, args.warmup / args.steps, args.lr_min / args.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        tokens = batch_tokens(rng.sample(ids, args.batch))
        snr = lo + (hi - lo) * torch.rand(args.batch, generator=gen)
        logits = model(tokens, snr, channel, gen)
        mask = tokens != PAD_ID
        loss = torch.nn.functional.cross_entropy(logits[mask], tokens[mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] += 1
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        state["elapsed_s"] = base + time.perf_counter() - start
        if state["step"] % args.valid_every == 0:
            _validate(model, valid[:args.valid_sentences], state, running, lr, ckpt_path.parent)
        if state["step"] % args.checkpoint_every == 0:
            _save(ckpt_path, model, optimizer, gen, state)
            print(f"step {state['step']}: loss {running:.3f}, lr {lr:.2e}, "
                  f"{state['elapsed_s']:.0f} s", file=sys.stderr, flush=True)
    _save(ckpt_path, model, optimizer, gen, state)


def _validate(model, valid, state, running, lr, run_dir) -> None:
    line = {"step": state["step"], "loss": round(running, 4), "lr": lr,
            "elapsed_s": round(state["elapsed_s"], 1)}
    if valid:
        res = evaluate(model, valid, VALID_SNR_DB)
        line.update({f"bleu1_{s:g}db": round(r["bleu1"], 4) for s, r in res.items()})
    state["history"].append(line)
    with open(run_dir / "log.jsonl", "a") as log:
        log.write(json.dumps(line) + "\n")
    print(json.dumps(line), file=sys.stderr, flush=True)


def _save(path: Path, model, optimizer, gen, state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "config": asdict(model.config), "tokenizer": model.tokenizer.to_json(),
                "generator": gen.get_state(), "state": state}, tmp)
    tmp.replace(path)


def _command() -> str:
    return "genjscc train text-jscc " + shlex.join(sys.argv[3:] if len(sys.argv) > 3 else [])


def _portable(command: str) -> str:
    """``command`` with data paths written under ``$GENJSCC_DATA`` (no developer's path)."""
    import re

    return re.sub(r"\S*/(text/\S+)", r"$GENJSCC_DATA/\1", command)


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in ("resume", "export", "no_register", "func", "target")}


def _export(args, model: TextJSCC, state: dict[str, Any], valid: list[str]) -> None:
    from genjscc import zoo

    model.eval()
    # the zoo file stores float16 (half the bytes); measure the model as it will load
    model.load_state_dict(state_tensors(model, SHIPPED_DTYPE))
    results = {}
    sample = valid[:args.eval_sentences]
    if sample:
        for channel in ("awgn", "rayleigh"):
            results[channel] = evaluate(model, sample, EVAL_SNR_DB, channel)
    cfg = model.config
    desc = (f"DeepSC-class text JSCC, {cfg.layers}+{cfg.layers} layers d={cfg.d_model}, "
            f"{model.num_parameters()} parameters, {cfg.channel_uses_per_token} channel uses "
            f"per token, {state['step']} steps")
    if "awgn" in results:
        desc += "; BLEU-1 " + ", ".join(f"{results['awgn'][s]['bleu1']:.3f} at {s:g} dB"
                                        for s in (6.0, 12.0)) + " (AWGN, europarl-dev)"
    zoo.export(args.name, "text-jscc",
               lambda p: save_text_jscc(model, p, {"steps": str(state["step"])}, SHIPPED_DTYPE),
               lambda p, sha: _card(args, model, state, results, len(sample), p, sha), desc)
    print(f"wrote zoo model {args.name}: {desc}", file=sys.stderr)


def _card(args, model: TextJSCC, state, results, n_eval, path: Path, sha: str) -> str:
    cfg = model.config
    lines = [
        f"# {args.name}: DeepSC-class text JSCC", "",
        "Transformer encoder, dense channel encoder to "
        f"{cfg.channel_uses_per_token} complex channel uses per byte-level BPE token "
        "(unit energy per channel use, normalized per sentence), AWGN or Rayleigh block "
        "fading, dense channel decoder with the SNR as a feature, non-autoregressive "
        "transformer decoder, softmax over the tokens (genjscc.core.text.model; docs/text.md).",
        "",
        "| | |", "|---|---|",
        f"| parameters | {model.num_parameters()} |",
        f"| layers per side, d_model, heads, ff | {cfg.layers}, {cfg.d_model}, {cfg.heads}, "
        f"{cfg.ff} |",
        f"| tokenizer | byte-level BPE, {cfg.vocab_size} ids, learned from the training "
        "file |",
        f"| channel uses per token | {cfg.channel_uses_per_token} complex |",
        f"| FLOPs per token (encoder + decoder) | {model.flops_per_token() / 1e6:.2f} M "
        f"(about {20 * model.flops_per_token() / 1e6:.0f} M per 20-token sentence) |",
        f"| training data | {Path(state.get('data', '?')).parent.name}/"
        f"{Path(state.get('data', '?')).name} "
        f"({state.get('train_sentences', '?')} sentences of at most {cfg.max_tokens} tokens)"
        " |",
        f"| training | {state['step']} steps of {args.batch} sentences, "
        f"{state['elapsed_s'] / 60:.1f} min on {cpu_name()} ({args.threads} thread) |",
        f"| SNR range, Rayleigh share | {args.snr_range} dB, {args.rayleigh_fraction} |",
        f"| file | {path.name}, {path.stat().st_size} bytes, sha256 {sha[:16]}... |",
        "", "Commands (trained, then measured and shipped):", "", "```",
        *[_portable(c) for c in (state.get("command", ""), *state.get("resumed", []),
                                 _command())], "```", "",
    ]
    if results:
        lines += [f"Held out: the first {n_eval} sentences of europarl-dev (never trained on), "
                  "BLEU (sacrebleu corpus BLEU) against Es/N0 per channel use:", "",
                  "| channel | Es/N0 dB | BLEU-1 | BLEU-4 | exact |", "|---|---|---|---|---|"]
        for channel, rows in results.items():
            for snr, r in rows.items():
                lines.append(f"| {channel} | {snr:g} | {r['bleu1']:.3f} | {r['bleu4']:.3f} | "
                             f"{r['exact']:.3f} |")
    return "\n".join(lines) + "\n"
