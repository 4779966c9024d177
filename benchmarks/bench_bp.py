"""Throughput of genjscc's batched BP decoder against the C++ ``ldpc`` package (BpDecoder).

Both decode the same noisy random codewords (BPSK over AWGN at ``--ebno`` dB) with the same
rule, schedule and iteration limit, stopping each word at zero syndrome; ``ldpc`` decodes one
word per call (received-vector mode: hard decisions plus per-bit channel error probabilities
``1 / (1 + e^|llr|)``), genjscc a whole batch per call. Single thread for both by default.

    .venv/bin/python benchmarks/bench_bp.py                        # all codes, default set
    .venv/bin/python benchmarks/bench_bp.py --codes LDPC_N49_K24 --batch 256 1024 --json out.json

Prints one line per (code, rule, schedule, batch) with words/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from genjscc.core.fec.bp import BPDecoder
from genjscc.core.fec.codes import load_parity_check, systematic_generator

# genjscc rule -> (ldpc bp_method, ms_scaling_factor)
RULES = {
    "tanh": ("product_sum", 1.0),
    "minsum": ("minimum_sum", 1.0),
    "normalized_minsum": ("minimum_sum", 0.75),
}
SCHEDULES = {"flooding": "parallel", "layered": "serial"}


def regular_ldpc(n: int, dv: int, dc: int, seed: int = 0) -> np.ndarray:
    """A random (dv, dc)-regular H (socket matching, repeated until no double edge)."""
    rng = np.random.default_rng(seed)
    m = n * dv // dc
    for _ in range(1000):
        sockets = rng.permutation(np.repeat(np.arange(n), dv))
        rows = np.repeat(np.arange(m), dc)
        H = np.zeros((m, n), dtype=np.uint8)
        np.add.at(H, (rows, sockets), 1)
        if H.max() == 1:
            return H
    raise RuntimeError("no simple regular graph found")


def nr_case(k: int, e: int, base_graph: int):
    """The part of a 5G NR LDPC code that a rate-matched word touches: (H, encode, recover).

    Rows of the base graph beyond the last transmitted parity column only involve parity bits
    that were never sent, so (as real receivers do) they are left out: H is the first
    ``cols/Z - kb`` base rows and ``cols/Z`` base columns.
    """
    from genjscc.core.fec.ldpc5g import NR5GLDPC  # written alongside this decoder

    code = NR5GLDPC(k, e, base_graph=base_graph)
    z, kb = code.z, code.k_ldpc // code.z
    cols = (int(code.rate_matching_index.max()) // z + 1) * z
    rows = cols - kb * z
    h = code.H.tocsr()[:rows, :cols].toarray().astype(np.uint8)

    def encode(info: np.ndarray) -> np.ndarray:
        return code.encode(torch.from_numpy(info).to(torch.float32)).numpy()

    def recover(llr: np.ndarray) -> np.ndarray:
        return code.rate_recover(torch.from_numpy(llr))[:, :cols].numpy()

    return h, code.k, encode, recover


def get_case(name: str):
    """``(H, k, encode: info [w, k] -> sent bits [w, e], recover: llr [w, e] -> llr [w, n])``."""
    if name.startswith("5GNR_"):  # 5GNR_BG2_K512_E1024
        bg, k, e = (int(f[1:] if f[0] != "B" else f[2:]) for f in name.split("_")[1:])
        return nr_case(k, e, bg)
    if name.startswith("REG36_N"):
        h = regular_ldpc(int(name[len("REG36_N") :]), 3, 6)
    else:
        h = load_parity_check(name)
    g, _ = systematic_generator(h)
    return h, g.shape[0], lambda info: (info @ g) % 2, lambda llr: llr


def get_h(name: str) -> np.ndarray:
    return get_case(name)[0]


def make_llr(name: str, words: int, ebno_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel LLRs (clipped to +-20) and codewords of random words, BPSK over real AWGN."""
    h, k, encode, recover = get_case(name)
    rng = np.random.default_rng(seed)
    sent = encode(rng.integers(0, 2, (words, k)))
    rate = k / sent.shape[1]
    noise_var = 1.0 / (2.0 * rate * 10 ** (ebno_db / 10.0))  # per real sample
    y = 1.0 - 2.0 * sent + math.sqrt(noise_var) * rng.standard_normal(sent.shape)
    llr = recover((2.0 * y / noise_var).astype(np.float32))
    return np.clip(llr, -20.0, 20.0).astype(np.float32), h


def bench_ldpc(H, llr, rule, schedule, iters) -> tuple[float, float]:
    from ldpc import BpDecoder

    method, scaling = RULES[rule]
    dec = BpDecoder(
        H,
        error_rate=0.1,
        max_iter=iters,
        bp_method=method,
        ms_scaling_factor=scaling,
        schedule=SCHEDULES[schedule],
        input_vector_type="received_vector",
    )
    hard = (llr < 0).astype(np.uint8)
    probs = 1.0 / (1.0 + np.exp(np.abs(llr.astype(np.float64))))
    its = 0
    t0 = time.perf_counter()
    for i in range(llr.shape[0]):
        dec.update_channel_probs(probs[i])
        dec.decode(hard[i])
        its += dec.iter
    return llr.shape[0] / (time.perf_counter() - t0), its / llr.shape[0]


def bench_torch(H, llr, rule, schedule, iters, batch, early_stop=True) -> tuple[float, float]:
    dec = BPDecoder(H, check_rule=rule, schedule=schedule, num_iters=iters, early_stop=early_stop)
    x = torch.from_numpy(llr)
    dec.decode(x[:batch])  # warm-up
    its = 0.0
    t0 = time.perf_counter()
    for s in range(0, x.shape[0], batch):
        its += float(dec.decode(x[s : s + batch]).num_iters.sum())
    return x.shape[0] / (time.perf_counter() - t0), its / x.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--codes", nargs="+", default=["LDPC_N49_K24", "MACKAY_N96_K48", "REG36_N1008"])
    ap.add_argument("--rules", nargs="+", default=list(RULES))
    ap.add_argument("--schedules", nargs="+", default=["flooding"])
    ap.add_argument("--ebno", type=float, nargs="+", default=[2.0, 4.0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--bits", type=int, default=2_000_000, help="coded bits per measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.codes:
        words = max(max(args.batch), args.bits // get_h(name).shape[1])
        for ebno in args.ebno:
            llr, H = make_llr(name, words, ebno, seed=1)
            for rule in args.rules:
                for sched in args.schedules:
                    ref, ref_it = max(
                        bench_ldpc(H, llr, rule, sched, args.iters) for _ in range(args.repeat)
                    )
                    for batch in args.batch:
                        wps, it = max(
                            bench_torch(H, llr, rule, sched, args.iters, batch)
                            for _ in range(args.repeat)
                        )
                        row = dict(
                            code=name,
                            n=H.shape[1],
                            ebno_db=ebno,
                            rule=rule,
                            schedule=sched,
                            batch=batch,
                            words=words,
                            ldpc_words_per_s=round(ref),
                            ldpc_mean_iters=round(ref_it, 2),
                            genjscc_words_per_s=round(wps),
                            genjscc_mean_iters=round(it, 2),
                            ratio=round(wps / ref, 2),
                        )
                        rows.append(row)
                        print(
                            f"{name:16s} {ebno:4.1f} dB {rule:18s} {sched:9s} batch {batch:5d}: "
                            f"ldpc {ref:9.0f} w/s ({ref_it:5.2f} it)  genjscc {wps:9.0f} w/s "
                            f"({it:5.2f} it)  ratio {wps / ref:5.2f}",
                            flush=True,
                        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
