"""Information content of held-out sentences under an LM with and without the LM-SSCC prompt.

For each sentence (with its terminating newline) the bits ``-log2 q`` of the coder's integer
tables, the LM conditioned either on nothing (the begin-of-chunk symbol only) or on
``genjscc.core.text.sscc.SENTENCE_CONTEXT``; reported as bits per word (all sentences) and the
90th / 99th percentile per sentence. Development data: europarl-dev (never trained on).

    python benchmarks/text_prompt_cost.py --lm small --limit 200
    python benchmarks/text_prompt_cost.py --lm smollm2 --limit 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchlib import DATA
from genjscc.core.source.codec import load_model
from genjscc.core.source.coding import PRECISION, _steps, _weights
from genjscc.core.text.sscc import SENTENCE_CONTEXT


def sentence_bits(lm, context: list[int], text: str) -> float:
    """Bits of ``text + "\\n"`` after ``context`` (coder tables, one row)."""
    symbols = lm.tokenize((text + "\n").encode("utf-8"))
    steps, bits = _steps(lm, 1, len(symbols), context), 0.0
    probs = next(steps)
    for t, symbol in enumerate(symbols):
        q = _weights(probs, [0], 1)[0] + 1.0
        bits += PRECISION - float(np.log2(q[symbol]))
        probs = steps.send([symbol]) if t + 1 < len(symbols) else None
    return bits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm", default="small")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--sentences", type=Path,
                    default=DATA / "text" / "europarl-dev" / "sentences.txt")
    args = ap.parse_args()
    torch.set_num_threads(1)
    texts = [s.strip() for s in args.sentences.read_text().splitlines() if s.strip()]
    texts = texts[:args.limit]
    lm = load_model(args.lm)
    words = np.array([len(t.split()) for t in texts])
    with torch.inference_mode():
        for name, prompt in (("no prompt", ""), ("SENTENCE_CONTEXT", SENTENCE_CONTEXT)):
            context = lm.tokenize(prompt.encode("utf-8"))
            bits = np.array([sentence_bits(lm, context, t) for t in texts])
            per = bits / words
            print(f"{args.lm}, {len(texts)} sentences, {name}: {bits.sum() / words.sum():.2f} "
                  f"bits/word; per sentence p90 {np.percentile(per, 90):.1f}, "
                  f"p99 {np.percentile(per, 99):.1f}", flush=True)


if __name__ == "__main__":
    main()
