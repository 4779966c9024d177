"""Train the small byte-level LM (genjscc.core.source.small, GRU or LSTM) on a folder of text.

Data: every ``*.txt`` under DATA (``--data DIR``, default ``$GENJSCC_DATA/text``; there is no
built-in path, the product itself never reads training data), except ``metadata.txt`` and
licence files. Held out for validation: whole files (``HELD_OUT_FILES``: Milton's prose
Areopagitica and Shakespeare's Tempest, held-out works of trained authors; Bierce's Devil's
Dictionary and the Wesnoth campaigns' dialogue, an author and a genre found nowhere else),
development sets (every file under ``europarl-dev/``: never trained on) and the tail of each
large concatenation of documents (``--tail-fraction`` of it, cut at a blank line).

Training matches coding: every sample is a window of ``--window`` bytes (default 2048, the
coder's default chunk) that starts from the begin-of-chunk input and the model's initial state,
exactly as the coder starts every chunk; it is learned by truncated back-propagation through
time, one optimizer step per ``--bptt`` bytes, the state carried (detached) across the window.
Windows are drawn from the top-level folders with probability proportional to
``size ** --sampling-alpha`` (0.5: small folders such as milton/ weigh more than their size;
1: uniform over bytes), uniformly inside a folder.

Resumable: RUN_DIR/checkpoint.pt (model, optimizer, step, elapsed time, RNG) is written every
``--checkpoint-every`` steps and when the time budget ends, with a line per checkpoint in
RUN_DIR/log.jsonl; ``--resume`` continues from it (the cosine schedule follows this call's
``--steps``), ``--export`` writes weights and card from it without training. The result is
safetensors plus a model card, and ``--register`` records it in the zoo manifest with its
sha256.

Integer coding: training is quantization-aware by default (``--no-qat`` turns it off): the
forward pass uses the int8 per-row weights and the int8 hidden states of the head's input
that the integer model computes with (straight-through gradients), and the export writes the
integer model (:mod:`genjscc.core.source.quantized`) whose containers decode on any machine.
``--float`` exports the float model instead (containers then decode only where the float
arithmetic is the same); ``--quantize FILE`` converts a float weights file into the integer
model without training.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from genjscc.core.source.quantized import (
    QuantizedByteLM,
    load_quantized_lm,
    quantize_small_lm,
    save_quantized_lm,
)
from genjscc.core.source.small import (
    BOS,
    BYTE_VOCAB,
    CELLS,
    SmallByteLM,
    SmallLMConfig,
    load_small_lm,
    save_small_lm,
)
from genjscc.errors import GenjsccError
from genjscc.train.data import default_data, require_data

# Whole files held out: a held-out work of trained authors, and sources whose author or genre
# appears nowhere else in the corpus (Bierce's dictionary; the dialogue of a game's campaigns)
HELD_OUT_FILES = ("milton/areopagitica_gut.txt", "shakespeare/tempest_gut.txt",
                  "general-en/devils-dictionary.txt", "general-en/wesnoth-campaigns.txt")
HELD_OUT_FOLDERS = ("europarl-dev/",)  # development sets: validation only
ENGLISH_PROSE = "milton/areopagitica_gut.txt"  # the held-out English prose of the targets
LARGE_FILE = 1 << 22  # files above 4 MiB are concatenations of many documents
EXCLUDED = ("metadata.txt",)


def split_corpus(root: Path, tail_fraction: float = 0.03
                 ) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(training pieces, validation pieces) as (name, bytes), names relative to ``root``."""
    files = sorted(p for p in root.rglob("*.txt")
                   if p.name not in EXCLUDED and not p.name.upper().startswith("COPYING"))
    if not files:
        raise GenjsccError(f"no *.txt training files under {root}")
    train, valid = [], []
    for path in files:
        name = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if name in HELD_OUT_FILES or name.startswith(HELD_OUT_FOLDERS):
            valid.append((name, data))
        elif len(data) > LARGE_FILE:
            cut = data.find(b"\n\n", int(len(data) * (1 - tail_fraction)))
            cut = cut + 2 if cut >= 0 else int(len(data) * (1 - tail_fraction))
            train.append((f"{name}[:{cut}]", data[:cut]))
            valid.append((f"{name}[{cut}:]", data[cut:]))
        else:
            train.append((name, data))
    return train, valid


def validation_texts(root: Path, max_bytes: int = 1 << 17) -> dict[str, bytes]:
    """The first ``max_bytes`` of each held-out piece: the text the model card reports on."""
    return {name: data[:max_bytes] for name, data in split_corpus(root)[1]}


class WindowSampler:
    """Random training windows, folder-balanced (see the module docstring).

    Args:
        pieces: training (name, bytes); the folder is the name's first path component.
        window: bytes per window (each window must fit inside one folder's text).
        alpha: folder weight exponent: ``P(folder) ~ size ** alpha``.
    """

    def __init__(self, pieces: list[tuple[str, bytes]], window: int, alpha: float) -> None:
        groups: dict[str, list[bytes]] = {}
        for name, data in pieces:
            groups.setdefault(name.split("/")[0] if "/" in name else ".", []).append(data)
        self.names, texts = [], []
        for name, parts in sorted(groups.items()):
            text = b"\n\n".join(parts)
            if len(text) > window:
                self.names.append(name)
                texts.append(torch.from_numpy(np.frombuffer(text, np.uint8).astype(np.int64)))
        if not texts:
            raise GenjsccError(f"no training folder holds more than --window {window} bytes")
        self.texts = texts
        self.window = window
        sizes = torch.tensor([float(len(t)) for t in texts], dtype=torch.float64)
        self.weights = sizes ** alpha / (sizes ** alpha).sum()
        self.total_bytes = int(sizes.sum())

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch, window)`` int64 bytes."""
        folders = torch.multinomial(self.weights, batch, replacement=True, generator=generator)
        rows = []
        for folder in folders.tolist():
            text = self.texts[folder]
            start = int(torch.randint(0, len(text) - self.window, (1,), generator=generator))
            rows.append(text[start:start + self.window])
        return torch.stack(rows)

    def describe(self) -> str:
        return ", ".join(f"{n} {w:.0%}" for n, w in zip(self.names, self.weights.tolist(),
                                                         strict=True))


@torch.inference_mode()
def evaluate_bpb(model: SmallByteLM | QuantizedByteLM, data: bytes, chunk_size: int = 2048,
                 batch: int = 64) -> float:
    """Cross-entropy in bits per byte through the coding step, each chunk started cold as the
    coder does: for a float model the ideal code length the range coder gets close to
    (before quantization to 24 bits), for an integer model the exact code length of its
    frequency tables; both before the container's overhead."""
    if isinstance(model, QuantizedByteLM):
        return _evaluate_int_bpb(model, data, chunk_size, batch)
    was_training = model.training
    model.eval()
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    device = model.head.weight.device
    total_bits = 0.0
    for start in range(0, len(chunks), batch):
        group = chunks[start:start + batch]
        width = max(len(c) for c in group)
        target = torch.zeros(len(group), width, dtype=torch.int64)
        mask = torch.zeros(len(group), width, dtype=torch.bool)
        for row, chunk in enumerate(group):
            target[row, :len(chunk)] = torch.frombuffer(bytearray(chunk), dtype=torch.uint8)
            mask[row, :len(chunk)] = True
        target, mask = target.to(device), mask.to(device)
        state = model.initial_state(len(group))
        tokens = torch.full((len(group),), BOS, dtype=torch.int64, device=device)
        for t in range(width):
            state, logits = model.step(state, tokens)
            nll = F.cross_entropy(logits.float(), target[:, t], reduction="none")
            total_bits += float(nll[mask[:, t]].sum()) / math.log(2)
            tokens = target[:, t]
    model.train(was_training)
    return total_bits / max(len(data), 1)


def _evaluate_int_bpb(model: QuantizedByteLM, data: bytes, chunk_size: int,
                      batch: int) -> float:
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    total_bits = 0.0
    for start in range(0, len(chunks), batch):
        group = chunks[start:start + batch]
        state = model.initial_state(len(group))
        tokens = torch.full((len(group),), BOS, dtype=torch.int64, device=model.device)
        for t in range(max(len(c) for c in group)):
            state, freqs = model.step(state, tokens)
            symbols = torch.tensor([c[t] if t < len(c) else 0 for c in group],
                                   device=model.device)
            mask = torch.tensor([t < len(c) for c in group], device=model.device)
            picked = freqs[torch.arange(len(group), device=model.device), symbols]
            total_bits += float(-torch.log2(picked[mask].double() / (1 << 24)).sum())
            tokens = symbols
    return total_bits / max(len(data), 1)


def xz_bpb(data: bytes) -> float:
    """Bits per byte of ``xz -9e`` (lzma preset 9 | extreme) on ``data``."""
    return 8 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / max(len(data), 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """examples:
  genjscc train lm --data DIR --work-dir lm-runs/try --minutes 10 --out try.safetensors \\
      --card try.md
  nohup genjscc train lm --cell lstm --bf16 --hidden 768 --embed 128 --steps 5000 \\
      --work-dir lm-runs/lstm768 > lm-runs/lstm768.log 2>&1 &     the shipped recipe
  genjscc train lm ...the same options... --resume                continue after a stop
  genjscc train lm ...the same options... --export --register     write it to the zoo
"""
    parser.add_argument("--data", type=Path, default=default_data("text"),
                        help="text folder (default $GENJSCC_DATA/text: %(default)s)")
    parser.add_argument("--name", default="lm-small", help="zoo name (%(default)s)")
    parser.add_argument("--out", type=Path,
                        help="weights file (default zoo/weights/NAME.safetensors)")
    parser.add_argument("--card", type=Path, help="model card (default zoo/NAME.md)")
    parser.add_argument("--work-dir", type=Path, default=Path("lm-runs/lm"),
                        help="checkpoint and log folder (%(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from WORK_DIR's checkpoint")
    parser.add_argument("--export", action="store_true",
                        help="write weights and card from WORK_DIR's checkpoint, no training")
    parser.add_argument("--register", action="store_true", help="add/update the zoo manifest entry")
    parser.add_argument("--no-qat", action="store_true",
                        help="train without quantization-aware training (QAT is the default)")
    parser.add_argument("--float", action="store_true",
                        help="export the float model, not the integer one (its containers "
                             "decode only on machines with the same float arithmetic)")
    parser.add_argument("--init", type=Path, metavar="FLOAT_WEIGHTS",
                        help="start from these float weights (same architecture) instead of "
                             "a random model: fine-tuning")
    parser.add_argument("--quantize", type=Path, metavar="FLOAT_WEIGHTS",
                        help="convert a float weights file into the integer model, write it "
                             "with its card (and --register), no training")
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                        help="lstm (%(default)s; integer export needs it) or gru (with --float)")
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--no-learn-init", action="store_true",
                        help="start chunks from a zero state instead of a learned one")
    parser.add_argument("--bf16", action="store_true",
                        help="train with bfloat16 autocast and code with bfloat16 matrix "
                             "products (about 3x faster with AMX/AVX512-BF16; the LSTM uses "
                             "oneDNN's fused kernel)")
    parser.add_argument("--steps", type=int, default=3000,
                        help="optimizer steps of the schedule (%(default)s)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="stop (and export) after this call has trained this long; 0 = no "
                             "limit")
    parser.add_argument("--batch", type=int, default=32, help="windows per step (%(default)s)")
    parser.add_argument("--window", type=int, default=2048,
                        help="bytes per training window, started cold (%(default)s)")
    parser.add_argument("--bptt", type=int, default=256,
                        help="bytes per optimizer step inside a window (%(default)s)")
    parser.add_argument("--sampling-alpha", type=float, default=0.5,
                        help="folder weight exponent (%(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--tail-fraction", type=float, default=0.03,
                        help="held-out tail of each file over 4 MiB (%(default)s)")
    parser.add_argument("--valid-bytes", type=int, default=1 << 17,
                        help="bytes of each held-out piece to evaluate (%(default)s)")


def _lr(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _check_args(args: argparse.Namespace) -> None:
    if args.threads < 1 or args.steps < 1 or args.batch < 1 or args.bptt < 1:
        raise GenjsccError("--threads, --steps, --batch and --bptt must be >= 1")
    if args.window < 2 or args.window % args.bptt:
        raise GenjsccError("--window must be >= 2 and a multiple of --bptt")
    if not 0 < args.tail_fraction < 0.5:
        raise GenjsccError("--tail-fraction must be in (0, 0.5)")
    if not 0 <= args.sampling_alpha <= 1:
        raise GenjsccError("--sampling-alpha must be in [0, 1]")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    _check_args(args)
    torch.set_num_threads(args.threads)  # a command: the process is ours
    if args.quantize:
        return _quantize_file(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenjsccError("--device cuda: torch sees no CUDA device")
    train, valid = split_corpus(require_data(args.data, "text"), args.tail_fraction)
    sampler = WindowSampler(train, args.window, args.sampling_alpha)
    config = SmallLMConfig(embed=args.embed, hidden=args.hidden, layers=args.layers,
                           cell=args.cell, learn_init=not args.no_learn_init,
                           step_dtype="bfloat16" if args.bf16 else "float32")
    torch.manual_seed(args.seed)
    model = SmallByteLM(config).to(device)
    if args.bf16:
        _check_bf16(model, device)
    if args.init and not args.resume and not args.export:
        _load_init(model, args.init)
    model.fake_quant = not args.no_qat and not args.float
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    state = {"step": 0, "elapsed": 0.0, "commands": [_command()]}
    checkpoint = args.work_dir / "checkpoint.pt"
    if args.resume or args.export:
        if not checkpoint.is_file():
            if args.export:
                raise GenjsccError(f"no checkpoint {checkpoint} to export")
        else:
            saved = torch.load(checkpoint, weights_only=False, map_location=device)
            if saved["config"] != asdict(config):
                raise GenjsccError(f"{checkpoint} has architecture {saved['config']}, not "
                                   f"{asdict(config)}; pass the same --cell/--hidden/--embed/"
                                   "--layers")
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            state = saved["state"]
            if not args.export:
                state["commands"].append(_command())

    def save_checkpoint() -> None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "state": state,
                    "config": asdict(config)}, tmp)
        tmp.replace(checkpoint)  # atomic: a kill during the save keeps the previous one

    if not args.export:
        print(f"train lm: {model.describe()}, {model.num_parameters():,} parameters; folders "
              f"{sampler.describe()}; run dir {args.work_dir}", file=sys.stderr)
        _train(args, model, optimizer, sampler, generator, state, save_checkpoint, tqdm)
        save_checkpoint()
    _export(args, model.cpu(), valid, state, sampler.total_bytes)
    return 0


def _check_bf16(model: SmallByteLM, device: torch.device) -> None:
    """--bf16 needs a bfloat16 LSTM/GRU kernel (oneDNN on AVX512-BF16 or AMX CPUs, or CUDA):
    refuse in one line where there is none instead of failing inside the first step."""
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            model(torch.zeros(1, 2, dtype=torch.int64, device=device))
    except RuntimeError as error:
        raise GenjsccError(f"--bf16: this machine has no bfloat16 {model.config.cell.upper()} "
                           f"kernel ({str(error).splitlines()[0][:80]}); train without "
                           "--bf16") from error


def _load_init(model: SmallByteLM, path: Path) -> None:
    """Copy a float weights file's parameters into ``model`` (same architecture)."""
    source = load_small_lm(path)
    shape = ("embed", "hidden", "layers", "cell", "learn_init")
    if any(getattr(source.config, k) != getattr(model.config, k) for k in shape):
        raise GenjsccError(f"--init {path}: its architecture {source.config} differs from "
                           f"this run's {model.config}; pass the same --cell/--hidden/--embed/"
                           "--layers")
    model.load_state_dict(source.state_dict())


def _train(args, model, optimizer, sampler, generator, state, save_checkpoint, tqdm) -> None:
    """Optimizer steps until ``--steps`` or the time budget; checkpoints at window ends."""
    device = model.head.weight.device
    budget = args.minutes * 60 if args.minutes > 0 else math.inf
    segments = args.window // args.bptt
    bar = tqdm(total=args.steps, initial=state["step"], desc="train lm", unit="step",
               file=sys.stderr, mininterval=10)
    model.train()
    running, last_saved, started_at = None, state["step"], state["elapsed"]
    while state["step"] < args.steps and state["elapsed"] - started_at < budget:
        started, cpu_started = time.perf_counter(), time.process_time()
        target = sampler.sample(args.batch, generator).to(device)
        inputs = torch.cat([torch.full((args.batch, 1), BOS, device=device), target[:, :-1]], 1)
        hidden = None
        for seg in range(segments):
            if state["step"] >= args.steps:  # the schedule ends inside this window
                break
            part = slice(seg * args.bptt, (seg + 1) * args.bptt)
            for group in optimizer.param_groups:
                group["lr"] = _lr(state["step"], args.steps, args.lr)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                logits, hidden = model(inputs[:, part], hidden)
            loss = F.cross_entropy(logits.reshape(-1, BYTE_VOCAB).float(),
                                   target[:, part].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            hidden = hidden.detach().float()
            state["step"] += 1
            bits = float(loss.detach()) / math.log(2)
            running = bits if running is None else 0.99 * running + 0.01 * bits
            bar.update(1)
        bar.set_postfix(bpb=f"{running:.3f}")
        state["elapsed"] += time.perf_counter() - started
        state["cpu"] = state.get("cpu", 0.0) + time.process_time() - cpu_started
        if state["step"] - last_saved >= args.checkpoint_every:
            save_checkpoint()
            last_saved = state["step"]
            with open(args.work_dir / "log.jsonl", "a") as log:
                log.write(json.dumps({"step": state["step"], "train_bpb": round(running, 4),
                                      "elapsed_min": round(state["elapsed"] / 60, 2),
                                      "lr": _lr(state["step"], args.steps, args.lr)}) + "\n")
    bar.close()


def _command() -> str:
    return shlex.join(["genjscc", "train", "lm", *sys.argv[3:]]) if len(sys.argv) > 2 else \
        "genjscc train lm (called from Python)"


def _export(args: argparse.Namespace, model: SmallByteLM, valid: list[tuple[str, bytes]],
            state: dict, train_bytes: int) -> None:
    extra = {"trained_steps": str(state["step"])}
    if args.float:
        _ship(args, model.config, lambda p: save_small_lm(model, p, extra), load_small_lm,
              valid, state, train_bytes)
    else:
        quantized = quantize_small_lm(model)
        _ship(args, model.config, lambda p: save_quantized_lm(quantized, p, extra),
              load_quantized_lm, valid, state, train_bytes)


def _quantize_file(args: argparse.Namespace) -> int:
    """``--quantize FLOAT``: the integer model of a float weights file, its card, --register."""
    from genjscc.zoo import sha256_file

    source = load_small_lm(args.quantize)
    sha = sha256_file(args.quantize)
    quantized = quantize_small_lm(source)
    _, valid = split_corpus(require_data(args.data, "text"), args.tail_fraction)
    state = {"step": 0, "elapsed": 0.0, "commands": [_command()],
             "source": f"{args.quantize.name} (sha256 {sha})"}
    _ship(args, source.config,
          lambda p: save_quantized_lm(quantized, p, {"quantized_from_sha256": sha}),
          load_quantized_lm, valid, state, 0)
    return 0


def _ship(args: argparse.Namespace, config: SmallLMConfig, save, load,
          valid: list[tuple[str, bytes]], state: dict, train_bytes: int) -> None:
    """Weights, card (measured on the written file) and, with --register, the manifest entry,
    through :func:`genjscc.zoo.export`."""
    from genjscc import zoo

    def card(path: Path, sha: str) -> str:
        model = load(path)  # measure what was written (rounded bfloat16, integers)
        rows = []
        for name, data in valid:
            sample = data[:args.valid_bytes]
            rows.append((name, len(sample), evaluate_bpb(model, sample), xz_bpb(sample)))
            print(f"valid {name}: {rows[-1][2]:.3f} bits/byte (xz -9e {rows[-1][3]:.3f})",
                  file=sys.stderr)
        return _card_text(args, model, rows, state, train_bytes, path, sha)

    parameters = SmallByteLM(config).num_parameters()
    entry = zoo.export(
        args.name, "lm", save, card,
        f"byte-level {config.cell.upper()} LM, x{config.layers} H={config.hidden}, "
        f"{parameters / 1e6:.2f} M parameters, {'float' if args.float else 'integer'} "
        "arithmetic, for genjscc compress",
        register=args.register, weights=args.out, card_path=args.card)
    print(f"wrote {args.out or entry.file} (sha256 {entry.sha256[:16]}...) and "
          f"{args.card or entry.card}", file=sys.stderr)


def _card_text(args: argparse.Namespace, model: SmallByteLM | QuantizedByteLM, rows: list,
               state: dict, train_bytes: int, out: Path, sha: str) -> str:
    table = "\n".join(f"| {name} | {n} | {bpb:.3f} | {xz:.3f} | {bpb / xz:.2f} |"
                      for name, n, bpb, xz in rows)
    commands = "\n".join(f"    {c}" for c in state["commands"])
    if args.export:
        commands += f"\n\nWritten from the run's checkpoint by:\n\n    {_command()}"
    cpu = (f", {state['cpu'] / 60:.1f} min of CPU" if "cpu" in state else
           " (CPU time not recorded by this run)")
    macs = model.macs_per_byte()
    held_out = ", ".join(f"`{h}`" for h in HELD_OUT_FILES)
    seen = state["step"] * args.batch * args.bptt
    stored = ("integer (int8 weights, int32 input table, integer lookup tables)"
              if isinstance(model, QuantizedByteLM) else model.config.step_dtype)
    training = (f"| training | {state['step']} steps of {args.batch} x {args.bptt} bytes "
                f"({seen:,} bytes seen) in windows of {args.window} bytes started cold "
                f"(truncated BPTT), folders sampled with alpha {args.sampling_alpha}, AdamW lr "
                f"{args.lr} cosine, seed {args.seed}, quantization-aware: "
                f"{'no' if args.no_qat else 'yes'} |\n"
                f"| training time | {state['elapsed'] / 60:.1f} min of wall time{cpu}, "
                f"{args.threads} thread(s), device {args.device} |\n"
                f"| training data | `{args.data}`: {train_bytes:,} bytes (all `*.txt` but the "
                "held-out pieces) |")
    if state.get("source"):
        training = (f"| source | converted from the float model {state['source']} (round to "
                    "nearest, per-row int8); its training is in its own card |")
    return f"""# {args.name}: byte-level recurrent language model

Used by `genjscc compress --model small`. Symbols are bytes, so any input codes; each chunk
starts from the model's initial state and a begin-of-chunk input (see docs/lm-compression.md).

| property | value |
|---|---|
| architecture | {model.describe()} -> linear 256 |
| parameters | {model.num_parameters():,} |
| multiply-adds per byte (coding) | {macs:,} (FLOPs per byte about {2 * macs:,}) |
| weights | `{out.name}`, {stored} safetensors, {out.stat().st_size:,} bytes, \
sha256 `{sha}` |
| held out (validation) | whole files {held_out}; the last {args.tail_fraction:.0%} of each \
file over 4 MiB (concatenated documentation), cut at a blank line |
{training}

Commands (the run, then each resume):

{commands}

## Validation (bits per byte, first {args.valid_bytes:,} bytes of each held-out piece)

Code length through the coding step in 2048-byte chunks, each started cold as the coder does
(an integer model's exact frequency tables; a float model's cross-entropy before the 24-bit
quantization of its probabilities). The real coded
size adds the container: about 90 bytes, plus 16 bytes of chunk table and 0 to 4 bytes of
range-coder flush per chunk (about 0.07 bits/byte at 2048-byte chunks); the coded sizes,
speeds and the classic compressors are in docs/benchmarks.md (`benchmarks/bench_lm.py`).

| held-out text | bytes | this model | xz -9e | ratio |
|---|---|---|---|---|
{table}
"""
