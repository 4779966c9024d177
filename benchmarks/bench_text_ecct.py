"""The short codes of the LM-SSCC text chains in their working range: ECCT with the chain's LLR
de-rating choices against BP-50 on the same noisy words.

    .venv/bin/python benchmarks/bench_text_ecct.py [--codes LDPC_N49_K24] [--ebno 4 5 6 7 8]
                                                   [--words 10000] [--quick] [--markdown FILE]

Random codewords, BPSK over real AWGN at each Eb/N0 (dB per information bit); every decoder
reads the same noisy words. The text chains (docs/text.md) reach 99 % exact sentences at about
Eb/N0 6-7.5 dB on AWGN (Ew/N0 18-20 dB, 32.8 channel uses per word, rate 24/49), so that is
the range measured, above the 2-7 dB the shipped ECCT models were trained on.

ECCT variants, always with the syndrome exit (words whose hard decisions satisfy every check
are kept as they are): the exact LLRs; the LLRs of a noise variance no smaller than that of
Eb/N0 ``cap`` (the chain's ``SSCCConfig.max_llr_ebno_db``), that is the exact LLRs times
``min(1, 10^((cap - Eb/N0) / 10))``; the exact LLRs times a fixed factor (input scaling).
Word errors: words with any wrong bit (of all n).
``exit differs``: words where the ECCT of the shipped chain (cap 7) with the syndrome exit and
the same network on every word decode differently (the exit's cost, if any).
"""

from __future__ import annotations

import argparse
import math

import torch

from benchlib import add_common_args, emit, setup_threads, table
from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder

SHIPPED_CAP = 7.0  # SSCCConfig.max_llr_ebno_db of the lm-sscc-ecct presets
VARIANTS: list[tuple[str, float | None, float]] = [  # (label, de-rating cap dB, LLR factor)
    ("exact LLRs", None, 1.0), ("cap 6 dB", 6.0, 1.0), ("cap 7 dB (shipped)", SHIPPED_CAP, 1.0),
    ("LLRs x 0.8", None, 0.8), ("LLRs x 1.25", None, 1.25)]


def noisy_words(code, ebno_db: float, words: int, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random codewords and their exact LLRs ``2 y / sigma^2`` (BPSK +1 for bit 0)."""
    info = torch.randint(0, 2, (words, code.k), generator=gen, dtype=torch.uint8)
    sent = code.encode(info)
    sigma2 = 1.0 / (2.0 * code.k / code.n * 10.0 ** (ebno_db / 10.0))
    y = 1.0 - 2.0 * sent.float() + math.sqrt(sigma2) * torch.randn(sent.shape, generator=gen)
    return sent, 2.0 * y / sigma2


def derate(ebno_db: float, cap: float | None) -> float:
    """The chain's LLR factor at ``ebno_db`` with the de-rating ``cap`` (dB; None: 1)."""
    return 1.0 if cap is None else min(1.0, 10.0 ** ((cap - ebno_db) / 10.0))


def measure(name: str, ebnos: list[float], words: int, seed: int) -> list[list[object]]:
    code = get_code(name)
    bp = make_decoder("bp", code, num_iters=50)
    ecct = make_decoder("ecct", code, syndrome_exit=True)
    full = make_decoder("ecct", code)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for ebno in ebnos:
        sent, llr = noisy_words(code, ebno, words, gen)
        errors = {"BP-50": int((bp(llr) != sent).any(-1).sum())}
        for label, cap, factor in VARIANTS:
            decided = ecct(llr * (factor * derate(ebno, cap)))
            errors[label] = int((decided != sent).any(-1).sum())
        shipped = llr * derate(ebno, SHIPPED_CAP)
        hard = (shipped < 0).to(torch.uint8)
        valid = ~torch.remainder(hard.float() @ torch.as_tensor(code.H, dtype=torch.float32).T,
                                 2.0).any(-1)
        differs = int((ecct(shipped) != full(shipped)).any(-1).sum())
        rows.append([name, f"{ebno:g}", words, int(valid.sum()),
                     *[errors[k] for k in errors], differs])
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", default="LDPC_N49_K24", help="comma-separated shipped codes")
    ap.add_argument("--ebno", type=float, nargs="+", default=[4.0, 5.0, 6.0, 7.0, 8.0])
    ap.add_argument("--words", type=int, default=10000, help="words per Eb/N0 point")
    ap.add_argument("--seed", type=int, default=0)
    add_common_args(ap)
    args = ap.parse_args(argv)
    threads = setup_threads(args.threads)
    words = 300 if args.quick else args.words
    rows = []
    for name in [c.strip() for c in args.codes.split(",") if c.strip()]:
        rows += measure(name, args.ebno, words, args.seed)
    out = [f"Word errors (any of the n bits wrong) out of the words sent, the same noisy words "
           f"for every decoder; torch threads {threads}; seed {args.seed}. ECCT columns: the "
           "chain's LLR de-rating or scaling (the shipped chain: cap 7 dB), syndrome exit on.",
           "",
           table(["code", "Eb/N0 dB", "words", "valid hard decisions", "BP-50",
                  *[f"ECCT {label}" for label, _, _ in VARIANTS], "exit differs (cap 7)"],
                 rows)]
    emit(args, "\n".join(out))


if __name__ == "__main__":
    main()
