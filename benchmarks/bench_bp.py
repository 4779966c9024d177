"""Throughput of genjscc's batched BP decoders against the C++ ``ldpc`` package (BpDecoder), by
batch size, for both implementations of ``BPDecoder``: the native CPU kernel
(``backend="native"``, lib/bp_kernel.c) and the torch one (``backend="torch"``).

All decode the same noisy random codewords (BPSK over AWGN at ``--ebno`` dB) with the same
rule, schedule and iteration limit, stopping each word at zero syndrome; ``ldpc`` decodes one
word per call (received-vector mode: hard decisions plus per-bit channel error probabilities
``1 / (1 + e^|llr|)``), genjscc a whole batch per call (batch 1: one word per call, as the
GNU Radio ldpc_decoder block decodes a one-codeword PDU). Single thread for all.

    .venv/bin/python benchmarks/bench_bp.py                        # all codes, default set
    .venv/bin/python benchmarks/bench_bp.py --codes LDPC_N49_K24 --batch 256 1024 --json out.json

Prints one line per (code, rule, schedule, batch) with words/s of each and their ratio, then a
Markdown table (``--markdown FILE`` writes it to a file; benchmarks/run_all.py uses that).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchlib import (
    LDPC_RULES,
    LDPC_SCHEDULES,
    add_common_args,
    emit,
    fmt_rate,
    get_case,
    ldpc_cpp_decode,
    noisy_words,
    setup_threads,
    table,
)
from genjscc.core.fec.bp import BPDecoder

# Eb/N0 points per code when --ebno is not given: one in the waterfall, one above it.
DEFAULT_EBNO = {
    "LDPC_N49_K24": [2.0, 4.0],
    "MACKAY_N96_K48": [2.0, 4.0],
    "REG36_N1008": [2.0, 4.0],
    "5GNR_BG2_K512_E1024": [1.5, 2.5],
}


def bench_ldpc(H, llr, rule, schedule, iters) -> tuple[float, float]:
    """``ldpc`` words/s and mean iterations."""
    method, scaling = LDPC_RULES[rule]
    _, seconds, its = ldpc_cpp_decode(H, llr, method, scaling, LDPC_SCHEDULES[schedule], iters)
    return llr.shape[0] / seconds, its


def bench_ours(H, llr, rule, schedule, iters, batch, backend) -> tuple[float, float]:
    """genjscc words/s (after a warm-up call) and mean iterations."""
    dec = BPDecoder(H, check_rule=rule, schedule=schedule, num_iters=iters, backend=backend,
                    num_threads=1)
    x = torch.from_numpy(llr)
    if batch == 1:  # one word per call: time a slice (per-call cost, not the code, dominates)
        x = x[: min(x.shape[0], 5000)]
    dec.decode(x[:batch])  # warm-up
    its = 0.0
    t0 = time.perf_counter()
    for s in range(0, x.shape[0], batch):
        its += float(dec.decode(x[s : s + batch]).num_iters.sum())
    return x.shape[0] / (time.perf_counter() - t0), its / x.shape[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--codes", nargs="+", default=list(DEFAULT_EBNO))
    ap.add_argument("--rules", nargs="+", default=list(LDPC_RULES), choices=list(LDPC_RULES))
    ap.add_argument("--schedules", nargs="+", default=["flooding"], choices=list(LDPC_SCHEDULES))
    ap.add_argument("--ebno", type=float, nargs="+", help="Eb/N0 dB (default: per code)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 1024, 4096],
                    help="batch sizes of the torch backend")
    ap.add_argument("--native-batch", type=int, nargs="+", default=[1, 256, 4096],
                    help="batch sizes of the native backend")
    ap.add_argument("--bits", type=int, default=2_000_000, help="coded bits per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    ap.add_argument("--json", help="write the rows to this file")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.codes, args.ebno, args.rules = ["LDPC_N49_K24"], [4.0], ["bp"]
        args.batch, args.native_batch, args.bits, args.repeat = [1024], [1, 1024], 100_000, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    threads = setup_threads(args.threads)
    rows = []
    for name in args.codes:
        case = get_case(name)
        words = max(max(args.batch), args.bits // case.n)
        for ebno in args.ebno or DEFAULT_EBNO.get(name, [2.0, 4.0]):
            llr = noisy_words(case, words, ebno, seed=1)[0]
            for rule in args.rules:
                for sched in args.schedules:
                    ref, ref_it = max(
                        bench_ldpc(case.H, llr, rule, sched, args.iters) for _ in range(args.repeat)
                    )
                    runs = [("torch", b) for b in args.batch]
                    runs += [("native", b) for b in args.native_batch]
                    for backend, batch in runs:
                        wps, it = max(
                            bench_ours(case.H, llr, rule, sched, args.iters, batch, backend)
                            for _ in range(args.repeat)
                        )
                        rows.append(dict(
                            code=name, label=case.label, n=case.n, ebno_db=ebno, rule=rule,
                            schedule=sched, backend=backend, batch=batch, words=words,
                            ldpc_words_per_s=round(ref), ldpc_mean_iters=round(ref_it, 2),
                            genjscc_words_per_s=round(wps), genjscc_mean_iters=round(it, 2),
                            ratio=round(wps / ref, 2),
                        ))
                        print(
                            f"{name:16s} {ebno:4.1f} dB {rule:18s} {sched:9s} {backend:6s} "
                            f"batch {batch:5d}: ldpc {ref:9.0f} w/s ({ref_it:5.2f} it)  genjscc "
                            f"{wps:9.0f} w/s ({it:5.2f} it)  ratio {wps / ref:5.2f}",
                            flush=True,
                        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    emit(args, markdown(rows, args, threads))


def markdown(rows: list[dict], args: argparse.Namespace, threads: int) -> str:
    """One table row per (code, Eb/N0, rule, schedule), one column per backend and batch."""
    columns = sorted({(r["backend"], r["batch"]) for r in rows},
                     key=lambda c: (c[0] != "native", c[1]))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["ebno_db"], r["rule"], r["schedule"]), []).append(r)
    body = []
    for (label, ebno, rule, sched), rs in groups.items():
        by_col = {(r["backend"], r["batch"]): r for r in rs}
        native = [r["ratio"] for r in rs if r["backend"] == "native"]
        torch_r = [r["ratio"] for r in rs if r["backend"] == "torch"]
        body.append([
            label, f"{ebno:g} dB", rule, sched,
            f"{fmt_rate(rs[0]['ldpc_words_per_s'])} ({rs[0]['ldpc_mean_iters']:.2f} it)",
            *(fmt_rate(by_col[c]["genjscc_words_per_s"]) if c in by_col else "-"
              for c in columns),
            f"{rs[-1]['genjscc_mean_iters']:.2f}",
            f"{min(native):.2f} - {max(native):.2f}" if native else "-",
            f"{min(torch_r):.2f} - {max(torch_r):.2f}" if torch_r else "-",
        ])
    headers = ["code", "Eb/N0", "rule", "schedule", "ldpc w/s (mean it.)",
               *(f"{b} batch {n}" for b, n in columns), "genjscc mean it.",
               "ratio native/ldpc", "ratio torch/ldpc"]
    return "\n\n".join([
        f"Decoded words per second, {args.iters} iterations at most with early stop, BPSK over "
        f"AWGN, random codewords ({rows[0]['words'] if rows else 0}+ words per code and point, "
        f"about {args.bits:,} coded bits; batch 1 times the first 5000), best of "
        f"{args.repeat} timings. genjscc: `BPDecoder(backend=...)`, native kernel with "
        f"`num_threads=1`, torch with torch threads = {threads}; ldpc 2.4.1 `BpDecoder` "
        "(single-threaded C++, one word per call; `parallel` = flooding, `serial` for the "
        "layered rows).",
        table(headers, body),
    ])


if __name__ == "__main__":
    main()
