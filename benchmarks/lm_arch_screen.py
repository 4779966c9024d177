"""Screen small byte-level LM architectures: bits/byte after a short training vs coding speed.

    .venv/bin/python benchmarks/lm_arch_screen.py --mb 1.5 [--only gru768 lstm640-bf16]
                                                  [--markdown out.md]

Every candidate trains on the same number of bytes (``--mb``) on one thread with the recipe of
``genjscc train lm`` (2048-byte windows started cold, truncated BPTT of 256 bytes, batch 32,
folder-balanced sampling, AdamW 2e-3), then is measured on the held-out text (teacher-forced,
cold 2048-byte chunks) and timed on its *coding* step: one byte for each of ``--rows`` chunks
per call (51 = a 100 KB file in 2048-byte chunks), the call the range coder makes on both
sides. Times are CPU seconds of this process (``time.process_time``), not wall time: the machine
is shared, and CPU time is what a candidate costs whatever else runs. The transformer is a
pre-LN byte transformer (learned positions up to 2048) stepped one byte at a time with a
preallocated KV cache. Short runs only rank the candidates roughly: what this settles is the
speed of each (training and coding) and the early learning per byte, not their final quality.
Not part of ``run_all.py``: it trains.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import DATA, add_common_args, emit, setup_threads, table
from genjscc.core.source.small import BOS, BYTE_VOCAB, SmallByteLM, SmallLMConfig
from genjscc.train.lm import (
    WindowSampler,
    _lr,
    split_corpus,
)

WINDOW, BPTT, BATCH = 2048, 256, 32
CODER_OVERHEAD_US = 6.0  # per row and step: quantization + constriction (measured, 51 rows)


class ByteTransformer(nn.Module):
    """Pre-LN causal transformer over bytes, with a KV-cached one-byte step for coding."""

    def __init__(self, dim: int, layers: int, heads: int, context: int = WINDOW) -> None:
        super().__init__()
        self.dim, self.heads, self.context = dim, heads, context
        self.embed = nn.Embedding(BYTE_VOCAB + 1, dim)
        self.pos = nn.Parameter(torch.randn(context, dim) * 0.02)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, BYTE_VOCAB)

    def forward(self, inputs: torch.Tensor, state=None):
        t = inputs.shape[1]
        x = self.embed(inputs) + self.pos[:t]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(self.norm(x)), None

    def initial_state(self, batch: int):
        shape = (len(self.blocks), 2, batch, self.heads, self.context, self.dim // self.heads)
        return {"kv": torch.zeros(shape), "t": 0}

    def step(self, state, inputs: torch.Tensor):
        t, kv = state["t"], state["kv"]
        b, h, dh = inputs.shape[0], self.heads, self.dim // self.heads
        x = self.embed(inputs) + self.pos[t]
        for i, blk in enumerate(self.blocks):
            y = blk.norm1(x)
            qkv = F.linear(y, blk.self_attn.in_proj_weight, blk.self_attn.in_proj_bias)
            q, k, v = qkv.view(b, 3, h, dh).unbind(1)
            kv[i, 0, :, :, t] = k
            kv[i, 1, :, :, t] = v
            keys, values = kv[i, 0, :, :, :t + 1], kv[i, 1, :, :, :t + 1]
            att = torch.softmax(torch.einsum("bhd,bhtd->bht", q, keys) / math.sqrt(dh), -1)
            out = torch.einsum("bht,bhtd->bhd", att, values).reshape(b, self.dim)
            x = x + blk.self_attn.out_proj(out)
            x = x + blk.linear2(F.gelu(blk.linear1(blk.norm2(x))))
        state["t"] = t + 1
        return state, self.head(self.norm(x))

    def macs_per_byte(self, position: int = WINDOW // 2) -> int:
        per_layer = 12 * self.dim ** 2 + 2 * position * self.dim
        return len(self.blocks) * per_layer + self.dim * BYTE_VOCAB

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _rnn(hidden: int, cell: str = "gru", layers: int = 1, bf16: bool = False):
    return lambda: SmallByteLM(SmallLMConfig(
        hidden=hidden, embed=128, layers=layers, cell=cell, learn_init=True,
        step_dtype="bfloat16" if bf16 else "float32"))


# name -> (constructor, train with bfloat16 autocast)
CANDIDATES = {
    "gru384": (_rnn(384), False),
    "gru512": (_rnn(512), False),
    "gru768": (_rnn(768), False),
    "gru2x448": (_rnn(448, layers=2), False),
    "lstm640-bf16": (_rnn(640, "lstm", bf16=True), True),
    "lstm768-bf16": (_rnn(768, "lstm", bf16=True), True),
    "gru768-bf16": (_rnn(768, bf16=True), True),
    "tf192x3-bf16": (lambda: ByteTransformer(192, 3, 4), True),
}


def train_for(model: nn.Module, sampler: WindowSampler, budget_bytes: int, seed: int,
              bf16: bool) -> dict:
    """Train ``model`` on ``budget_bytes`` (bfloat16 autocast if ``bf16``): steps, bytes seen,
    CPU seconds."""
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    recurrent = isinstance(model, SmallByteLM)
    steps, seen, start = 0, 0, time.process_time()
    planned = 100_000  # the schedule: warm-up, then nearly flat at this length
    model.train()
    while seen < budget_bytes:
        if recurrent:
            target = sampler.sample(BATCH, gen)
            inputs = torch.cat([torch.full((BATCH, 1), BOS), target[:, :-1]], 1)
            hidden = None
            for seg in range(WINDOW // BPTT):
                part = slice(seg * BPTT, (seg + 1) * BPTT)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits, hidden = model(inputs[:, part], hidden)
                hidden = hidden.detach().float()
                _update(model, optimizer, logits, target[:, part], _lr(steps, planned, 2e-3))
                steps += 1
                seen += BATCH * BPTT
        else:  # whole windows; the same bytes per optimizer step
            rows = max(1, BATCH * BPTT // WINDOW)
            target = sampler.sample(rows, gen)
            inputs = torch.cat([torch.full((rows, 1), BOS), target[:, :-1]], 1)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, _ = model(inputs)
            _update(model, optimizer, logits, target, _lr(steps, planned, 2e-3))
            steps += 1
            seen += rows * WINDOW
    return {"steps": steps, "seen": seen, "cpu_s": time.process_time() - start}


def _update(model, optimizer, logits, target, lr) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = F.cross_entropy(logits.reshape(-1, BYTE_VOCAB).float(), target.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


@torch.inference_mode()
def step_time(model: nn.Module, rows: int, steps: int, bf16: bool) -> float:
    """Seconds per coding step (``rows`` bytes), including the softmax the coder takes."""
    model.eval()
    state = model.initial_state(rows)
    tokens = torch.full((rows,), BOS, dtype=torch.int64)
    for _ in range(5):
        state, logits = model.step(state, tokens)
    if not isinstance(model, SmallByteLM):
        state = model.initial_state(rows)
    start = time.process_time()
    # the recurrent models carry their step type in their config; the transformer autocasts
    with torch.autocast("cpu", dtype=torch.bfloat16,
                        enabled=bf16 and not isinstance(model, SmallByteLM)):
        for _ in range(steps):
            state, logits = model.step(state, tokens)
            torch.softmax(logits.float(), -1)
    return (time.process_time() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--mb", type=float, default=1.5, help="training MB each (%(default)s)")
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES))
    parser.add_argument("--rows", type=int, default=51)
    parser.add_argument("--valid-bytes", type=int, default=1 << 15)
    parser.add_argument("--data", type=Path, default=DATA / "text")
    args = parser.parse_args(argv)
    threads = setup_threads(args.threads)
    budget = int(1e6 * (0.02 if args.quick else args.mb))
    train, valid = split_corpus(args.data)
    sampler = WindowSampler(train, WINDOW, 0.5)
    valid = [(n, d[:args.valid_bytes]) for n, d in valid]
    rows = []
    for name in args.only or list(CANDIDATES):
        torch.manual_seed(0)
        make, bf16 = CANDIDATES[name]
        model = make()
        stats = train_for(model, sampler, budget, seed=0, bf16=bf16)
        bpb = {n: _step_bpb(model, d) if isinstance(model, SmallByteLM)
               else _tf_bpb(model, d, bf16) for n, d in valid}
        per_step = step_time(model, args.rows, 20 if args.quick else 300, bf16)
        coder = args.rows / (per_step + args.rows * CODER_OVERHEAD_US * 1e-6)
        row = [name, f"{model.num_parameters():,}", f"{model.macs_per_byte():,}",
               f"{stats['seen'] / stats['cpu_s'] / 1e3:.1f}", *[f"{bpb[n]:.3f}" for n, _ in valid],
               f"{per_step * 1e3:.2f}", f"{coder / 1e3:.1f}"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    headers = ["model", "parameters", "MACs/byte", "training KB/s (CPU)",
               *[n for n, _ in valid], f"step ms ({args.rows} rows)", "coder kB/s (est.)"]
    emit(args, f"Training on {budget / 1e6:g} MB each on {threads} thread(s); bits/byte "
               f"teacher-forced on the first {args.valid_bytes} bytes of each held-out piece, "
               "cold 2048-byte chunks, through the coding step. Times in CPU seconds of the "
               "process. Coder kB/s = rows / (step time + rows x "
               f"{CODER_OVERHEAD_US} us of quantization and range coding).\n\n"
         + table(headers, rows))
    return 0


@torch.inference_mode()
def _step_bpb(model: SmallByteLM, data: bytes) -> float:
    """Bits per byte through the coding step itself (all chunks of ``data`` as one batch)."""
    model.eval()
    chunks = [data[i:i + WINDOW] for i in range(0, len(data), WINDOW)]
    width = max(len(c) for c in chunks)
    target = torch.zeros(len(chunks), width, dtype=torch.int64)
    mask = torch.zeros(len(chunks), width, dtype=torch.bool)
    for row, chunk in enumerate(chunks):
        target[row, :len(chunk)] = torch.tensor(list(chunk))
        mask[row, :len(chunk)] = True
    state = model.initial_state(len(chunks))
    tokens = torch.full((len(chunks),), BOS, dtype=torch.int64)
    bits = 0.0
    for t in range(width):
        state, logits = model.step(state, tokens)
        nll = F.cross_entropy(logits, target[:, t], reduction="none")
        bits += float(nll[mask[:, t]].sum()) / math.log(2)
        tokens = target[:, t]
    model.train()
    return bits / len(data)


@torch.no_grad()
def _tf_bpb(model: ByteTransformer, data: bytes, bf16: bool) -> float:
    model.eval()
    bits = 0.0
    for i in range(0, len(data), WINDOW):
        chunk = torch.tensor(list(data[i:i + WINDOW]))[None]
        inputs = torch.cat([torch.full((1, 1), BOS), chunk[:, :-1]], 1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model(inputs)
        logits = logits.float()
        bits += float(F.cross_entropy(logits[0], chunk[0], reduction="sum")) / math.log(2)
    model.train()
    return bits / len(data)


if __name__ == "__main__":
    sys.exit(main())
