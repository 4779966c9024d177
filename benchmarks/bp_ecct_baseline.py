"""-ln(BER) of sum-product BP (50 flooding iterations) on LDPC(49,24), BPSK over AWGN, against
the ECCT paper's BP baseline (Choukroun & Wolf 2022, Table 1: 6.23 / 8.19 / 11.72 at 4/5/6 dB).

    .venv/bin/python benchmarks/bp_ecct_baseline.py [--words 200000 500000 2000000] [--ldpc]
                                                    [--quick] [--markdown FILE]

BER is counted over all n = 49 bits of random codewords (as ECCT does) and, for comparison, over
the k = 24 information positions; ``--ldpc`` also decodes the 5 dB words with the C++ ``ldpc``
package's product_sum decoder (slow: one word per call).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from benchlib import add_common_args, emit, setup_threads, table
from genjscc.core.fec.bp import BPDecoder
from genjscc.core.fec.codes import load_parity_check, systematic_generator

PUBLISHED = {4.0: 6.23, 5.0: 8.19, 6.0: 11.72}


def neg_ln(errors: int, bits: int) -> str:
    return f"{-math.log(errors / bits):.2f}" if errors else "inf (no error: more words)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--words", type=int, nargs=3, default=[200_000, 500_000, 2_000_000])
    ap.add_argument("--ldpc", action="store_true", help="also run ldpc's product_sum at 5 dB")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.words, args.ldpc = [20_000, 20_000, 20_000], False
    threads = setup_threads(args.threads)
    rows = []
    h = load_parity_check("LDPC_N49_K24")
    g, info = systematic_generator(h)
    k, n = g.shape
    rate = k / n
    g_t = torch.from_numpy(g.astype(np.float32))
    dec = BPDecoder(h, check_rule="bp", num_iters=50)
    gen = torch.Generator().manual_seed(0)
    for ebno, words in zip(sorted(PUBLISHED), args.words, strict=True):
        noise_var = 1.0 / (2.0 * rate * 10 ** (ebno / 10.0))
        err_all = err_info = word_err = 0
        t0 = time.perf_counter()
        for start in range(0, words, 50_000):
            size = min(50_000, words - start)
            cw = (torch.randint(0, 2, (size, k), generator=gen).float() @ g_t) % 2
            y = 1.0 - 2.0 * cw + math.sqrt(noise_var) * torch.randn(cw.shape, generator=gen)
            wrong = dec(2.0 * y / noise_var) != cw
            err_all += int(wrong.sum())
            err_info += int(wrong[:, info].sum())
            word_err += int(wrong.any(1).sum())
        seconds = time.perf_counter() - t0
        rows.append([f"{ebno:g} dB", f"{words:,}", f"{err_all} ({word_err})",
                     neg_ln(err_all, words * n), neg_ln(err_info, words * k), PUBLISHED[ebno],
                     f"{seconds:.1f}"])
        print(
            f"{ebno:.0f} dB: {words} words, {err_all} bit errors in {word_err} words; "
            f"-ln BER over n bits {neg_ln(err_all, words * n)}, over k info bits "
            f"{neg_ln(err_info, words * k)} (published {PUBLISHED[ebno]}); "
            f"{seconds:.1f} s",
            flush=True,
        )
    notes = []
    if args.ldpc:
        from ldpc import BpDecoder

        rng = np.random.default_rng(5)
        words = args.words[1]
        noise_var = 1.0 / (2.0 * rate * 10 ** (5.0 / 10.0))
        cw = (rng.integers(0, 2, (words, k)) @ g) % 2
        llr = 2.0 * (1.0 - 2.0 * cw + math.sqrt(noise_var) * rng.standard_normal(cw.shape))
        llr /= noise_var
        ref = BpDecoder(
            h,
            error_rate=0.1,
            max_iter=50,
            bp_method="product_sum",
            input_vector_type="received_vector",
        )
        hard, probs = (llr < 0).astype(np.uint8), 1.0 / (1.0 + np.exp(np.abs(llr)))
        out = np.empty_like(hard)
        for i in range(words):
            ref.update_channel_probs(probs[i])
            out[i] = ref.decode(hard[i])
        ours = dec(torch.from_numpy(llr.astype(np.float32))).numpy()
        ber_ref, ber_ours = (out != cw).mean(), (ours != cw).mean()
        line = (f"5 dB, same {words:,} words: -ln BER ldpc product_sum {-math.log(ber_ref):.2f}, "
                f"genjscc tanh {-math.log(ber_ours):.2f}")
        print(line)
        notes.append(line + ".")
    emit(args, "\n\n".join([
        "Sum-product BP, 50 flooding iterations (early stop), LDPC(49,24), BPSK over AWGN, "
        "random codewords; BER over all n = 49 codeword bits (the ECCT measure) and over the "
        f"k = 24 information bits; torch threads = {threads}.",
        table(["Eb/N0", "words", "bit errors (word errors)", "-ln BER (n bits)",
               "-ln BER (k info bits)", "ECCT paper (BP, 50 it.)", "time s"], rows),
        *notes,
    ]))


if __name__ == "__main__":
    main()
