"""ECCT against BP-50 on every shipped ECCT model: -ln(BER), BLER and decoding throughput.

    .venv/bin/python benchmarks/bench_ecct.py [--ebno 4 5 6] [--min-errors 300]
                                              [--max-words 500000] [--quick] [--markdown FILE]

For each zoo model of kind ``ecct`` (``genjscc models``) and its code: the ECCT decoder and
sum-product BP with 50 flooding iterations (early stop) decode random codewords, BPSK over real
AWGN, through the BER engine (``genjscc.core.sim.ber``, the engine of ``genjscc ber``).
-ln(BER) counts all n codeword bits (the ECCT papers' measure); BLER counts words with a wrong
information bit. Throughput is decoder-only (words/s) on one batch of 4096 noisy words at 5 dB,
after a warm-up call, at the given torch thread count. The published figures are those of
Choukroun and Wolf (NeurIPS 2022), Table 1.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from benchlib import add_common_args, emit, setup_threads, table
from genjscc.core.ecct.decoder import build_decoder
from genjscc.core.ecct.model import ARCH_NAMES
from genjscc.core.fec.codes import get_code, list_codes
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.sim.ber import simulate_ber
from genjscc.zoo import list_models

# -ln(BER) at 4 / 5 / 6 dB published with ECCT (Table 1), as quoted in issues 4 and 5.
PUBLISHED: dict[str, dict[str, tuple[float, float, float]]] = {
    "POLAR_N64_K32": {"BP-50": (4.26, 5.38, 6.50), "ECCT N=2 d=32": (4.27, 5.44, 6.95),
                      "ECCT N=6 d=32": (5.71, 7.63, 9.94), "ECCT N=6 d=128": (6.99, 9.44, 12.32)},
    "BCH_N63_K45": {"ECCT N=6 d=128": (5.60, 7.79, 10.93)},
    "LDPC_N49_K24": {"BP-50": (6.23, 8.19, 11.72), "ECCT N=6 d=128": (6.13, 8.71, 12.10)},
}


def throughput(code, decoder, batch: int = 4096, ebno_db: float = 5.0) -> float:
    """Decoded words per second on one batch at ``ebno_db`` (BPSK, real AWGN LLRs)."""
    gen = torch.Generator().manual_seed(0)
    noise_var = 1.0 / (2.0 * code.code_rate * 10 ** (ebno_db / 10))
    llr = 2.0 * (1.0 + noise_var**0.5 * torch.randn(batch, code.n, generator=gen)) / noise_var
    decoder(llr[:64])
    start = time.perf_counter()
    decoder(llr)
    return batch / (time.perf_counter() - start)


def _code_of(model_name: str) -> str:
    return next(c for c in list_codes() if f"ecct-{c.lower()}" == model_name)


def _fmt(values: list[float]) -> str:
    return " / ".join("inf" if math.isinf(v) else f"{v:.2f}" for v in values)


def measure(code, decoder, args) -> tuple[list[float], list[float], float]:
    points = simulate_ber(code, decoder, args.ebno, min_errors=args.min_errors,
                          max_words=args.max_words, seed=1, progress=False)
    neg_ln = [-math.log(p.ber_codeword) if p.ber_codeword else math.inf for p in points]
    return neg_ln, [p.bler for p in points], throughput(code, decoder)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ebno", type=float, nargs="+", default=[4.0, 5.0, 6.0])
    ap.add_argument("--min-errors", type=int, default=300, help="block errors per point")
    ap.add_argument("--max-words", type=int, default=500_000, help="words per point at most")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.min_errors, args.max_words = 20, 4096
    threads = setup_threads(args.threads)
    ebno = " / ".join(f"{e:g}" for e in args.ebno)
    rows, verdicts = [], []
    for entry in (e for e in list_models() if e.kind == "ecct"):
        code = get_code(_code_of(entry.name))
        results = {}
        ecct_dec = build_decoder(code, model=entry.name)
        c = ecct_dec.model.config
        for label, dec in ((f"{ARCH_NAMES[c.arch]} N={c.num_layers} d={c.d_model} "
                            f"({entry.name})", ecct_dec),
                           ("BP-50 (measured)", make_decoder("bp", code, num_iters=50))):
            neg_ln, bler, rate = measure(code, dec, args)
            results[label] = neg_ln
            rows.append([code.name, label, _fmt(neg_ln),
                         " / ".join(f"{b:.2e}" for b in bler), f"{rate:,.0f}"])
            print(f"{code.name} {label}: -ln BER {_fmt(neg_ln)}; {rate:.0f} words/s", flush=True)
        for label, values in PUBLISHED.get(code.name, {}).items():
            if len(values) == len(args.ebno):
                rows.append([code.name, f"{label} (published)", _fmt(list(values)), "-", "-"])
        ecct, bp = results.values()
        margins = [e - b for e, b in zip(ecct, bp, strict=True)]
        beats = all(m > 0 for m in margins)
        verdicts.append(f"{code.name}: ECCT - BP-50 = {_fmt(margins)} "
                        f"({'beats BP-50 at every point' if beats else 'does not beat BP-50'}).")
    body = [
        f"ECCT and BP-50 on the same kind of random codewords, BPSK over AWGN, Eb/N0 {ebno} dB; "
        f"at least {args.min_errors} block errors or {args.max_words:,} words per point; "
        f"torch threads = {threads}. -ln(BER) over all n codeword bits.",
        table(["code", "decoder", f"-ln(BER) {ebno} dB", "BLER", "words/s"], rows),
        "Verdict (target: the shipped ECCT beats BP-50 at each point):\n\n"
        + "\n".join(f"- {v}" for v in verdicts),
        "Model cards (python/genjscc/zoo/ecct-*.md) give each model's configuration and its "
        "training budget against the paper's 1000 epochs x 1000 steps x 128 samples.",
    ]
    emit(args, "\n\n".join(body))


if __name__ == "__main__":
    main()
