"""Why the text JSCC has 16384 tokens of 7 channel uses: the per-word arithmetic of a token code.

    .venv/bin/python benchmarks/text_token_code.py      # about 2 minutes on one core

For byte-level BPE vocabularies learned from the training sentences (general-en), the tokens
per word of europarl-dev (held out), and the token accuracy at Es/N0 = 6 dB of the untrained
text JSCC's starting point: a random spherical code (one Gaussian point per token, energy 1
per complex channel use) with maximum-likelihood detection per token. Word accuracy is about
accuracy ** (tokens per word). The text JSCC learns from there (constellation and context),
so this is the floor a configuration starts from, at the channel uses per word it spends.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchlib import DATA, add_common_args, emit, setup_threads, table
from genjscc.core.text.tokenizer import train_tokenizer

CONFIGS = ((1024, 4), (4096, 5), (4096, 6), (8192, 6), (8192, 8), (16384, 7), (16384, 8))


def token_accuracy(vocab: int, uses: int, esn0_db: float, trials: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((vocab, 2 * uses))
    points *= np.sqrt(uses / (points ** 2).sum(1, keepdims=True))
    energy = (points ** 2).sum(1)
    sent = rng.integers(0, vocab, trials)
    noise = rng.standard_normal((trials, 2 * uses)) * np.sqrt(10 ** (-esn0_db / 10) / 2)
    y = points[sent] + noise
    hits = 0
    for i in range(0, trials, 500):  # nearest point = ML for equal priors
        hits += int(((energy - 2 * y[i:i + 500] @ points.T).argmin(1) == sent[i:i + 500]).sum())
    return hits / trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4000, help="tokens per configuration")
    add_common_args(ap)
    args = ap.parse_args()
    setup_threads(args.threads)
    train = (DATA / "text/general-en/sentences.txt").read_text().splitlines()
    dev = [s for s in (DATA / "text/europarl-dev/sentences.txt").read_text().splitlines()
           if s.strip()][:500]
    words = sum(len(s.split()) for s in dev)
    per_word = {}
    for vocab in sorted({v for v, _ in CONFIGS}):
        tok = train_tokenizer(train, vocab)
        per_word[vocab] = sum(len(tok.encode(s)) for s in dev) / words
    rows = []
    for vocab, uses in CONFIGS:
        acc = token_accuracy(vocab, uses, 6.0, 400 if args.quick else args.trials, 0)
        rows.append([vocab, uses, f"{per_word[vocab]:.3f}", f"{uses * per_word[vocab]:.1f}",
                     f"{acc:.3f}", f"{acc ** per_word[vocab]:.3f}"])
    emit(args, f"500 europarl-dev sentences ({words} words); tokenizers learned from "
         "general-en/sentences.txt; random spherical code, ML detection, AWGN at Es/N0 6 dB "
         "per channel use.\n\n" + table(
             ["tokens", "channel uses / token", "tokens / word", "channel uses / word",
              "token accuracy at 6 dB", "word accuracy (about)"], rows))


if __name__ == "__main__":
    main()
