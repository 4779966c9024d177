"""ECCT against BP-50 on every shipped ECCT model: -ln(BER), BLER and decoding throughput.

    .venv/bin/python benchmarks/bench_ecct.py [--ebno 4 5 6] [--min-errors 300] [--threads 1]
                                              [--json out.json]

-ln(BER) counts all n codeword bits of random codewords (the ECCT papers' measure), BPSK over
AWGN, through genjscc.core.sim.ber; BLER counts words with a wrong information bit. Throughput
is decoder-only (words/s) on one batch of noisy words at 5 dB, after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from genjscc.core.ecct.decoder import build_decoder
from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.sim.ber import simulate_ber
from genjscc.zoo import list_models


def throughput(code, decoder, batch: int = 4096, ebno_db: float = 5.0) -> float:
    """Decoded words per second on one batch at ``ebno_db`` (BPSK, real AWGN LLRs)."""
    gen = torch.Generator().manual_seed(0)
    noise_var = 1.0 / (2.0 * code.code_rate * 10 ** (ebno_db / 10))
    llr = 2.0 * (1.0 + noise_var**0.5 * torch.randn(batch, code.n, generator=gen)) / noise_var
    decoder(llr[:64])
    start = time.perf_counter()
    decoder(llr)
    return batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ebno", type=float, nargs="+", default=[4.0, 5.0, 6.0])
    parser.add_argument("--min-errors", type=int, default=300)
    parser.add_argument("--max-words", type=int, default=500_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| code | model | decoder | -ln(BER) " + " / ".join(f"{e:g}" for e in args.ebno)
          + " dB | BLER | words/s |\n|---|---|---|---|---|---|")
    for entry in (e for e in list_models() if e.kind == "ecct"):
        code_name = next(c for c in _code_names() if f"ecct-{c.lower()}" == entry.name)
        code = get_code(code_name)
        for label, dec in (("ecct", build_decoder(code, model=entry.name)),
                           ("bp-50", make_decoder("bp", code, num_iters=50))):
            points = simulate_ber(code, dec, args.ebno, min_errors=args.min_errors,
                                  max_words=args.max_words, seed=1)
            neg_ln = [-math.log(p.ber_codeword) if p.ber_codeword else math.inf for p in points]
            rate = throughput(code, dec)
            rows.append({"code": code_name, "model": entry.name, "decoder": label,
                         "ebno_db": args.ebno, "neg_ln_ber": neg_ln,
                         "bler": [p.bler for p in points], "words_per_s": rate})
            print(f"| {code_name} | {entry.name} | {label} | "
                  + " / ".join(f"{v:.2f}" for v in neg_ln) + " | "
                  + " / ".join(f"{p.bler:.2e}" for p in points) + f" | {rate:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


def _code_names() -> list[str]:
    from genjscc.core.fec.codes import list_codes

    return list_codes()


if __name__ == "__main__":
    main()
