"""Train the small byte-level GRU LM (genjscc.core.source.small) on a folder of text.

Data: every ``*.txt`` under DATA (default /work/shared/data/text, a developer tool's input; the
product never reads it), except ``metadata.txt`` and licence files. Held out for validation:
whole files (``HELD_OUT_FILES``) and the tail of each large concatenation of documents
(``--tail-fraction`` of it, cut at a blank line, so whole documents apart from the first).
Training samples random windows that start from the begin-of-chunk input with a zero state,
exactly as the coder starts every chunk.

Resumable: a checkpoint (model, optimizer, step, elapsed time, RNG) is written to WORK_DIR every
``--checkpoint-every`` steps and when the time budget ends; ``--resume`` continues from it.
The result is written as safetensors plus a model card, and ``--register`` records it in the zoo
manifest with its sha256.
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

from genjscc.core.source.small import (
    BOS,
    BYTE_VOCAB,
    SmallByteLM,
    SmallLMConfig,
    save_small_lm,
)
from genjscc.errors import GenjsccError

DEFAULT_DATA = Path("/work/shared/data/text")
HELD_OUT_FILES = ("milton/areopagitica_gut.txt", "shakespeare/tempest_gut.txt")
LARGE_FILE = 1 << 22  # files above 4 MiB are concatenations of many documents
EXCLUDED = ("metadata.txt",)
ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"


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
        if name in HELD_OUT_FILES:
            valid.append((name, data))
        elif len(data) > LARGE_FILE:
            cut = data.find(b"\n\n", int(len(data) * (1 - tail_fraction)))
            cut = cut + 2 if cut >= 0 else int(len(data) * (1 - tail_fraction))
            train.append((f"{name}[:{cut}]", data[:cut]))
            valid.append((f"{name}[{cut}:]", data[cut:]))
        else:
            train.append((name, data))
    return train, valid


def validation_texts(root: Path = DEFAULT_DATA, max_bytes: int = 1 << 17) -> dict[str, bytes]:
    """The first ``max_bytes`` of each held-out piece: the text the model card reports on."""
    return {name: data[:max_bytes] for name, data in split_corpus(root)[1]}


@torch.no_grad()
def evaluate_bpb(model: SmallByteLM, data: bytes, chunk_size: int = 2048,
                 batch: int = 32) -> float:
    """Cross-entropy in bits per byte, each chunk started cold as the coder does."""
    model.eval()
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    total_bits = 0.0
    for start in range(0, len(chunks), batch):
        group = chunks[start:start + batch]
        width = max(len(c) for c in group)
        target = torch.full((len(group), width), -100, dtype=torch.int64)
        for row, chunk in enumerate(group):
            target[row, :len(chunk)] = torch.frombuffer(bytearray(chunk), dtype=torch.uint8)
        inputs = torch.cat([torch.full((len(group), 1), BOS), target[:, :-1].clamp(min=0)], 1)
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, BYTE_VOCAB), target.reshape(-1),
                               ignore_index=-100, reduction="sum")
        total_bits += float(loss) / math.log(2)
    model.train()
    return total_bits / max(len(data), 1)


def xz_bpb(data: bytes) -> float:
    """Bits per byte of ``xz -9e`` (lzma preset 9 | extreme) on ``data``."""
    return 8 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / max(len(data), 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="text folder (%(default)s)")
    parser.add_argument("--name", default="lm-small", help="zoo name (%(default)s)")
    parser.add_argument("--out", type=Path,
                        help="weights file (default zoo/weights/NAME.safetensors)")
    parser.add_argument("--card", type=Path, help="model card (default zoo/NAME.md)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/lm"),
                        help="checkpoints (%(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from WORK_DIR's checkpoint")
    parser.add_argument("--register", action="store_true", help="add/update the zoo manifest entry")
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3000, help="schedule length (%(default)s)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="stop (and export) after this much training time; 0 = no limit")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=256, help="bytes per training sequence")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
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
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.threads < 1 or args.steps < 1 or args.batch < 1 or args.window < 2:
        raise GenjsccError("--threads, --steps, --batch must be >= 1 and --window >= 2")
    torch.set_num_threads(args.threads)  # a command: the process is ours
    if not 0 < args.tail_fraction < 0.5:
        raise GenjsccError("--tail-fraction must be in (0, 0.5)")
    train, valid = split_corpus(args.data, args.tail_fraction)
    corpus = torch.from_numpy(np.frombuffer(b"".join(d for _, d in train), dtype=np.uint8)
                              .astype(np.int64))
    config = SmallLMConfig(embed=args.embed, hidden=args.hidden, layers=args.layers)
    model = SmallByteLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    checkpoint = args.work_dir / "checkpoint.pt"
    if args.resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] != asdict(config):
            raise GenjsccError(f"{checkpoint} has architecture {state['config']}, not "
                               f"{asdict(config)}; pass the same --hidden/--embed/--layers")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, elapsed = state["step"], state["elapsed"]

    def save_checkpoint() -> None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "step": step, "elapsed": elapsed,
                    "config": asdict(config)}, tmp)
        tmp.replace(checkpoint)

    budget = args.minutes * 60 if args.minutes > 0 else math.inf
    bar = tqdm(total=args.steps, initial=step, desc="train lm", unit="step", file=sys.stderr)
    model.train()
    running = None
    while step < args.steps and elapsed < budget:
        started = time.perf_counter()
        starts = torch.randint(0, len(corpus) - args.window, (args.batch,), generator=generator)
        target = corpus[starts[:, None] + torch.arange(args.window)]
        inputs = torch.cat([torch.full((args.batch, 1), BOS), target[:, :-1]], dim=1)
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, args.steps, args.lr)
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, BYTE_VOCAB), target.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        elapsed += time.perf_counter() - started
        bits = float(loss.detach()) / math.log(2)
        running = bits if running is None else 0.98 * running + 0.02 * bits
        bar.update(1)
        bar.set_postfix(bpb=f"{running:.3f}")
        if step % args.checkpoint_every == 0:
            save_checkpoint()
    bar.close()
    save_checkpoint()
    _export(args, model, valid, step, elapsed, len(corpus))
    return 0


def _export(args: argparse.Namespace, model: SmallByteLM, valid: list[tuple[str, bytes]],
            step: int, elapsed: float, train_bytes: int) -> None:
    from genjscc.zoo import ModelEntry, register_model, sha256_file

    out = args.out or ZOO_DIR / "weights" / f"{args.name}.safetensors"
    card = args.card or ZOO_DIR / f"{args.name}.md"
    rows = []
    for name, data in valid:
        sample = data[:args.valid_bytes]
        rows.append((name, len(sample), evaluate_bpb(model, sample), xz_bpb(sample)))
        print(f"valid {name}: {rows[-1][2]:.3f} bits/byte (xz -9e {rows[-1][3]:.3f})",
              file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_small_lm(model, out, {"trained_steps": str(step),
                               "valid_bpb": json.dumps({r[0]: round(r[2], 4) for r in rows})})
    sha = sha256_file(out)
    card.write_text(_card_text(args, model, rows, step, elapsed, train_bytes, out, sha))
    print(f"wrote {out} (sha256 {sha[:16]}...) and {card}", file=sys.stderr)
    if args.register:
        register_model(ModelEntry(
            name=args.name, kind="lm", file=out.name, sha256=sha, card=card.name,
            description=f"byte-level GRU LM, H={model.config.hidden}, "
                        f"{model.num_parameters() / 1e6:.2f} M parameters, for genjscc compress"))


def _card_text(args: argparse.Namespace, model: SmallByteLM, rows: list, step: int,
               elapsed: float, train_bytes: int, out: Path, sha: str) -> str:
    c = model.config
    table = "\n".join(f"| {name} | {n} | {bpb:.3f} | {xz:.3f} | {bpb / xz:.2f} |"
                      for name, n, bpb, xz in rows)
    argv = shlex.join(["genjscc", "train", "lm", *sys.argv[3:]]) if len(sys.argv) > 2 else \
        "genjscc train lm (called from Python)"
    macs = model.macs_per_byte()
    held_out = ", ".join(f"`{h}`" for h in HELD_OUT_FILES)
    seen = step * args.batch * args.window
    return f"""# {args.name}: byte-level GRU language model

Used by `genjscc compress --model small`. Symbols are bytes, so any input codes; each chunk
starts from a zero state and a begin-of-chunk input (see docs/lm-compression.md).

| property | value |
|---|---|
| architecture | embedding {c.embed} -> GRU x{c.layers}, H={c.hidden} -> linear 256 |
| parameters | {model.num_parameters():,} |
| multiply-adds per byte | {macs:,} (FLOPs per byte about {2 * macs:,}) |
| weights | `{out.name}`, float32 safetensors, {out.stat().st_size:,} bytes, sha256 `{sha}` |
| training data | `{args.data}`: {train_bytes:,} bytes (all `*.txt` but the held-out pieces) |
| held out (validation) | whole files {held_out}; the last {args.tail_fraction:.0%} of each \
file over 4 MiB (concatenated documentation), cut at a blank line |
| training | {step} steps of {args.batch} x {args.window} bytes ({seen:,} bytes seen), AdamW \
lr {args.lr} cosine, seed {args.seed} |
| training time | {elapsed / 60:.1f} min on {args.threads} CPU thread(s) |
| command | `{argv}` |

## Validation (bits per byte, first {args.valid_bytes:,} bytes of each held-out piece)

Teacher-forced cross-entropy in 2048-byte chunks, each started cold as the coder does. The real
coded size adds the container: about 90 bytes, plus 32 bytes of chunk table and 0 to 4 bytes of
range-coder flush per chunk (about 0.14 bits/byte at 2048-byte chunks).

| held-out text | bytes | this model | xz -9e | ratio |
|---|---|---|---|---|
{table}

This is a brief training run meant to give the test suite real weights; it is far from the
targets of issue 3 (0.75 x xz -9e on English prose). Retrain with more steps (resumable) for a
useful model.
"""
