"""LDPC decoders side by side, in one run: our batched torch BP decoders, the ``ldpc`` 2.4 C++
decoder and GNU Radio's gr-fec LDPC decoder, on the same code, iterations and LLRs.

For every code and Eb/N0 point, one set of noisy random codewords (BPSK over real AWGN; for the
5G code after rate matching and LLR rate recovery) is decoded by

* ours (``genjscc.core.fec.decoders.make_decoder``): ``bp`` (sum-product, flooding),
  ``bp-layered`` (sum-product, row-layered), ``normalized-minsum`` (x0.75, flooding), batched,
  each with the native CPU kernel (lib/bp_kernel.c, ``backend="native"``) at 1 and 2 threads
  (``num_threads``) and with the torch implementation (``backend="torch"``, 1 torch thread);
* ``ldpc-cpp`` (``ldpc.BpDecoder``, one word per call): ``product_sum``/``parallel`` beside ``bp``,
  ``product_sum``/``serial`` beside ``bp-layered`` (ldpc's serial schedule is variable-serial,
  ours row-layered: same idea, not the same order), ``minimum_sum`` x0.75/``parallel`` beside
  ``normalized-minsum``;
* ``gr-fec`` (``gnuradio.fec.ldpc_decoder``, GNU Radio 3.10, sum-product with flooding, from an
  alist written from the same H) as GNU Radio users run it: the generic decoder object in the
  ``fec.decoder`` block, in a flowgraph ``file_source -> fec.decoder -> vector_sink_b``, with
  all the words of a pass in one flowgraph run (so its start-up, ~2 ms, is paid once), beside
  ``bp``. It is single-threaded (``fec.extended_decoder`` could run several decoder objects in
  parallel threads; not used here).

All stop a word at zero syndrome (gr-fec: ``awgn_bp::decode`` tests the hard decision before
the first iteration and after each one), with the same iteration limit. Throughput is
information bits (k per word) and words per second over the whole BLER pass (ours after one
warm-up call).

    .venv/bin/python benchmarks/bench_ldpc.py [--codes LDPC_N49_K24 ...] [--iters 50]
        [--ebno 3 4] [--words 20000] [--batch 4096] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchlib import (
    Case,
    add_common_args,
    emit,
    fmt_rate,
    get_case,
    ldpc_cpp_decode,
    noisy_words,
    setup_threads,
    table,
)
from genjscc.core.fec.codes import gf2_row_reduce
from genjscc.core.fec.decoders import make_decoder

# code -> (Eb/N0 points in dB: BLER about 1e-1 and 1e-2 with BP-50, words per point)
DEFAULTS = {
    "LDPC_N49_K24": ([3.0, 4.0], 40_000),
    "MACKAY_N96_K48": ([2.5, 3.5], 40_000),
    "REG36_N1008": ([1.5, 2.0], 8_000),
    "5GNR_BG2_K512_E1024": ([1.25, 1.75], 8_000),
}
# our decoder -> (ldpc bp_method, ms_scaling_factor, ldpc schedule)
OURS = {
    "bp": ("product_sum", 1.0, "parallel"),
    "bp-layered": ("product_sum", 1.0, "serial"),
    "normalized-minsum": ("minimum_sum", 0.75, "parallel"),
}
# gr-fec's sum-product reads exact zeros (punctured 5G bits) as a 0/0: they get this tiny LLR,
# for every decoder alike.
PUNCTURED_LLR = 1e-3
TARGET_LDPC, TARGET_GRFEC = 0.5, 20.0
GRFEC = "gr-fec ldpc_decoder (sum-product)"


def variants(args) -> list[tuple[str, int]]:
    """How each of our decoders runs: (backend, threads); torch with ``--threads``."""
    return [("native", 1), ("native", 2), ("torch", args.threads)]


def our_label(name: str, backend: str, threads: int) -> str:
    return f"{name} [{backend}, {threads} thread{'s' if threads > 1 else ''}]"


def ldpc_label(ours: str) -> str:
    """Row label of the ldpc-cpp configuration matched with our decoder ``ours``."""
    method, scaling, sched = OURS[ours]
    return f"ldpc-cpp {method}" + (f" x{scaling:g}" if scaling != 1 else "") + f" {sched}"


@dataclass
class Row:
    code: str
    ebno_db: float
    decoder: str
    words: int
    block_errors: int
    bler: float
    mean_iters: float | None
    seconds: float
    words_per_s: float
    info_mbit_per_s: float


# ------------------------------------------------------------------------------------ gr-fec


def write_alist(h: np.ndarray, path: Path) -> None:
    """MacKay alist of ``h`` in the layout gr-fec reads (one index list per line)."""
    m, n = h.shape
    cols = [np.flatnonzero(h[:, j]) + 1 for j in range(n)]
    rows = [np.flatnonzero(h[i]) + 1 for i in range(m)]
    lines = [f"{n} {m}", f"{max(map(len, cols))} {max(map(len, rows))}",
             " ".join(str(len(c)) for c in cols), " ".join(str(len(r)) for r in rows)]
    lines += [" ".join(map(str, c)) for c in cols] + [" ".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def independent_rows_first(h: np.ndarray) -> np.ndarray:
    """Rows of ``h`` reordered so the first rank(h) are linearly independent.

    gr-fec's syndrome test (its early stop) checks only the first ``n - k = rank`` rows of the
    alist; with redundant rows first it could stop on a word that is not a codeword. BP itself
    does not depend on the row order.
    """
    basis = gf2_row_reduce(h.T)[1]  # pivot columns of H^T = independent rows of H
    if len(basis) == h.shape[0]:
        return h
    rest = np.setdiff1d(np.arange(h.shape[0]), basis)
    return h[np.concatenate([np.sort(basis), rest])]


class GrFecLdpc:
    """gr-fec's ``ldpc_decoder`` (sum-product) in a flowgraph, fed our LLRs.

    gr-fec's soft input is "+ = bit 1": ``in = -llr``. Its channel likelihood ratio is
    ``exp(in / (2 sigma^2))``, so ``sigma = 1/sqrt(2)`` makes it exactly ``P(1)/P(0) = e^-llr``.
    It returns k systematic bits per word at positions of its own choosing
    (:meth:`positions` finds them).
    """

    def __init__(self, h: np.ndarray, iters: int, workdir: Path) -> None:
        from gnuradio import fec

        self.workdir = workdir
        alist = workdir / "h.alist"
        write_alist(independent_rows_first(h), alist)
        self.n = h.shape[1]
        self.dec = fec.ldpc_decoder.make(str(alist), math.sqrt(0.5), iters)
        self.k = self.dec.get_output_size()

    def decode(self, llr: np.ndarray) -> tuple[np.ndarray, float]:
        """``(bits [w, k], seconds of the flowgraph run)``."""
        from gnuradio import blocks, fec, gr

        path = self.workdir / "in.f32"
        (-llr).astype(np.float32).tofile(path)
        tb = gr.top_block()
        src = blocks.file_source(gr.sizeof_float, str(path), False)
        dec = fec.decoder(self.dec, gr.sizeof_float, gr.sizeof_char)
        sink = blocks.vector_sink_b()
        tb.connect(src, dec, sink)
        t0 = time.perf_counter()
        tb.run()
        seconds = time.perf_counter() - t0
        out = np.asarray(sink.data(), dtype=np.uint8)
        if out.size != llr.shape[0] * self.k:
            raise RuntimeError(f"gr-fec returned {out.size} bits for {llr.shape[0]} words")
        return out.reshape(llr.shape[0], self.k), seconds

    def positions(self, codewords: np.ndarray) -> np.ndarray:
        """Codeword position of each output bit, from noiseless decodes of ``codewords``."""
        clean = np.where(codewords == 0, 10.0, -10.0).astype(np.float32)
        out, _ = self.decode(clean)
        pos = []
        for i in range(self.k):
            match = np.flatnonzero((codewords == out[:, i : i + 1]).all(axis=0))
            if match.size == 0:
                raise RuntimeError(f"gr-fec output bit {i} matches no codeword position")
            pos.append(match[0])  # several only for constant columns (5G fillers): same values
        return np.asarray(pos)


# --------------------------------------------------------------------------------- decoding


def run_ours(name: str, case: Case, llr: np.ndarray, iters: int, batch: int, backend: str,
             threads: int):
    """Our decoder ``name`` over all words in batches: ``(bits, seconds, mean iterations)``.

    ``backend="native"`` runs ``threads`` kernel threads; ``"torch"`` that many torch threads.
    """
    options = {"backend": backend}
    if backend == "native":
        options["num_threads"] = threads
    dec = make_decoder(name, SimpleNamespace(H=case.H, n=case.n), num_iters=iters, **options)
    x = torch.from_numpy(llr)
    before = torch.get_num_threads()
    torch.set_num_threads(threads if backend == "torch" else before)
    try:
        dec.decode(x[: min(batch, 256)])  # warm-up: index tensors, allocator
        bits, its = [], 0.0
        t0 = time.perf_counter()
        for s in range(0, x.shape[0], batch):
            res = dec.decode(x[s : s + batch])
            bits.append(res.bits)
            its += float(res.num_iters.sum())
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    return torch.cat(bits).numpy(), seconds, its / x.shape[0]


def run_grfec(gr_dec: GrFecLdpc, llr: np.ndarray, budget_s: float, probe: int = 500):
    """All words in one flowgraph run, or as many as ``budget_s`` allows at the speed of a
    first run of ``probe`` words; ``(bits, seconds)``."""
    out, seconds = gr_dec.decode(llr[:probe])
    if probe >= llr.shape[0]:
        return out, seconds
    rate = probe / seconds
    rest = llr[probe : probe + max(1, int(rate * max(budget_s - seconds, 0.0)))]
    out2, seconds2 = gr_dec.decode(rest)
    return np.concatenate([out, out2]), seconds + seconds2


def measure_point(case: Case, ebno: float, words: int, args, gr_dec: GrFecLdpc | None,
                  info_pos: np.ndarray, gr_pos: np.ndarray | None) -> list[Row]:
    """Every decoder on the same words; each timed ``args.repeat`` times (best kept, the same
    for all), block errors from the first pass."""
    llr, cw = noisy_words(case, words, ebno, seed=args.seed)
    llr[llr == 0.0] = PUNCTURED_LLR
    rows = []

    def measure(decoder: str, run, positions: np.ndarray, ref: np.ndarray) -> None:
        bits, seconds, its = run(llr)
        w = bits.shape[0]  # gr-fec may stop early (--grfec-budget)
        for _ in range(args.repeat - 1):
            seconds = min(seconds, run(llr[:w])[1])
        wrong = (bits[:, positions] != ref[:w]).any(1)
        rows.append(Row(case.name, ebno, decoder, w, int(wrong.sum()), float(wrong.mean()), its,
                        seconds, w / seconds, w * case.k / seconds / 1e6))
        r = rows[-1]
        print(f"{case.name:20s} {ebno:5.2f} dB {decoder:40s} {w:7d} words "
              f"{r.block_errors:6d} err BLER {r.bler:.2e}  {r.words_per_s:9.0f} w/s "
              f"{r.info_mbit_per_s:7.3f} Mbit/s" + (f"  {its:5.2f} it" if its else ""),
              flush=True)

    ref = cw[:, info_pos]
    for name, (method, scaling, sched) in OURS.items():
        for backend, threads in variants(args):
            measure(our_label(name, backend, threads),
                    lambda x, n=name, b=backend, t=threads: run_ours(n, case, x, args.iters,
                                                                     args.batch, b, t),
                    info_pos, ref)
        measure(ldpc_label(name),
                lambda x, m=method, f=scaling, sc=sched: ldpc_cpp_decode(
                    case.H, x, m, f, sc, args.iters),
                info_pos, ref)
    if gr_dec is not None:
        measure(GRFEC, lambda x: (*run_grfec(gr_dec, x, args.grfec_budget), None),
                np.arange(gr_dec.k), cw[:, gr_pos])
    return rows


def bench_code(name: str, args, workdir: Path) -> tuple[Case, list[Row], str]:
    case = get_case(name)
    points, words = DEFAULTS.get(name, ([2.0, 3.0], 10_000))
    points, words = args.ebno or points, args.words or words
    gr_dec, gr_pos, note = None, None, ""
    if not args.no_grfec:
        try:
            gr_dec = GrFecLdpc(case.H, args.iters, workdir)
            cw = noisy_words(case, 64, 10.0, seed=12345)[1]
            gr_pos = gr_dec.positions(cw)
        except Exception as exc:  # report, do not hide: the doc says why gr-fec is missing
            gr_dec, note = None, f"gr-fec could not decode {name}: {exc!r}"
            print(note, flush=True)
    # Block errors over one information set for every decoder: gr-fec's systematic positions
    # (it returns only those) when it runs, else the code's own.
    info_pos = gr_pos if gr_pos is not None else case.info_positions
    rows = []
    for ebno in points:
        rows += measure_point(case, ebno, words, args, gr_dec, info_pos, gr_pos)
    return case, rows, note


# ---------------------------------------------------------------------------------- report


def markdown(results, args, versions: str) -> str:
    def n1(name: str) -> str:
        return our_label(name, "native", 1)

    def n2(name: str) -> str:
        return our_label(name, "native", 2)

    def t1(name: str) -> str:
        return our_label(name, "torch", args.threads)

    parts = [
        f"Same LLRs for every decoder at each point: BPSK over real AWGN, random codewords, LLRs "
        f"clipped to +-20; at most {args.iters} iterations, early stop at zero syndrome. "
        f"Ours: batches of {args.batch} words; `[native, T threads]` is the C kernel "
        "(lib/bp_kernel.c) with `num_threads=T`, `[torch, T threads]` the torch implementation "
        "with `torch.set_num_threads(T)`. ldpc-cpp and gr-fec are single-threaded C++ (ldpc: "
        "one word per call from Python; gr-fec: the `fec.decoder` block in a one-block "
        "flowgraph fed from a file, all words of a pass in one run, start-up included). "
        "Throughput = words (and k information bits) decoded per second over the whole pass "
        f"(best of {args.repeat} passes, every decoder alike). A block error is a word with a "
        "wrong bit in one information set, the same for all decoders (gr-fec's systematic "
        "positions). " + versions,
    ]
    summary, gr_summary = [], []
    for case, rows, note in results:
        body = []
        for r in rows:
            body.append([f"{r.ebno_db:g}", r.decoder, f"{r.words:,}", r.block_errors,
                         f"{r.bler:.2e}", f"{r.mean_iters:.2f}" if r.mean_iters else "-",
                         fmt_rate(r.words_per_s), f"{r.info_mbit_per_s:.3f}"])
        parts.append(f"**{case.label}** (n = {case.n}, k = {case.k}, rate {case.code_rate:.3f})")
        parts.append(table(["Eb/N0 dB", "decoder", "words", "block errors", "BLER", "mean it.",
                            "words/s", "info Mbit/s"], body))
        if note:
            parts.append(note)
        for ebno in sorted({r.ebno_db for r in rows}):
            at = {r.decoder: r for r in rows if r.ebno_db == ebno}
            wps = {k: v.words_per_s for k, v in at.items()}
            summary.append([case.label, f"{ebno:g}",
                            *(f"{wps[n1(o)] / wps[ldpc_label(o)]:.2f}" for o in OURS),
                            *(f"{wps[t1(o)] / wps[ldpc_label(o)]:.2f}" for o in OURS)])
            if GRFEC in wps:
                g = wps[GRFEC]
                gr_summary.append([case.label, f"{ebno:g}", f"{wps[n1('bp')] / g:.1f}",
                                   f"{wps[n2('bp')] / g:.1f}", f"{wps[n1('bp-layered')] / g:.1f}",
                                   f"{wps[t1('bp')] / g:.2f}"])
    parts.append("**Speed ratios against ldpc-cpp** (ours / ldpc, words per second, both "
                 "single-threaded; > 1 = ours faster):")
    parts.append(table(["code", "Eb/N0 dB", *(f"{o} [native, 1] / {ldpc_label(o)}" for o in OURS),
                        *(f"{o} [torch, {args.threads}] / same" for o in OURS)], summary))
    if gr_summary:
        parts.append("**Speed ratios against gr-fec** (ours / gr-fec, words per second; gr-fec "
                     "single-threaded; `bp` is the same algorithm, sum-product with flooding; "
                     "`bp-layered` the same rule with the layered schedule, same iteration "
                     "limit, lower BLER):")
        parts.append(table(["code", "Eb/N0 dB", "bp [native, 1 thread]", "bp [native, 2 threads]",
                            "bp-layered [native, 1 thread]", f"bp [torch, {args.threads}]"],
                           gr_summary))
    def ours_errors(rows, ebno: float) -> int:
        return next(b.block_errors for b in rows if b.ebno_db == ebno and b.decoder == n1("bp"))

    pairs = [f"{case.label} at {r.ebno_db:g} dB: {r.block_errors} / {ours_errors(rows, r.ebno_db)}"
             for case, rows, _ in results for r in rows if r.decoder == GRFEC]
    if pairs:
        parts.append(
            "gr-fec (GNU Radio's `awgn_bp`) runs sum-product on likelihood ratios and leaves an "
            "edge out of a check's product by dividing by it, so an LLR of exactly 0 (a "
            "punctured 5G bit) gives 0/0 and the word fails; punctured bits therefore get an "
            f"LLR of {PUNCTURED_LLR:g} here, for every decoder. Block errors of gr-fec / ours "
            "(`bp` native, the same algorithm) on the same words: " + "; ".join(pairs) + ". "
            "ldpc's `serial` schedule is variable-serial, ours row-layered: that column compares "
            "two serial schedules, not the same order of updates."
        )
    ldpc_r = [float(x) for row in summary for x in row[2:5]]
    gr_r = [float(row[2]) for row in gr_summary]
    gr_layered = [float(row[4]) for row in gr_summary]
    text = (
        f"Targets, ours at 1 thread: >= {TARGET_LDPC}x ldpc-cpp: met in "
        f"{sum(x >= TARGET_LDPC for x in ldpc_r)} of {len(ldpc_r)} comparisons "
        f"(range {min(ldpc_r):.2f} - {max(ldpc_r):.2f}x)")
    if gr_r:
        text += (f"; `bp` >= {TARGET_GRFEC:g}x gr-fec: met in "
                 f"{sum(x >= TARGET_GRFEC for x in gr_r)} of {len(gr_r)} "
                 f"(range {min(gr_r):.1f} - {max(gr_r):.1f}x; `bp-layered`: "
                 f"{min(gr_layered):.1f} - {max(gr_layered):.1f}x)")
    parts.append(text + ".")
    return "\n\n".join(parts)


def versions() -> str:
    from importlib.metadata import version

    out = [f"torch {torch.__version__}", f"ldpc {version('ldpc')}"]
    try:
        from gnuradio import gr

        out.append(f"GNU Radio {gr.version()}")
    except ImportError:
        out.append("GNU Radio not importable")
    return "Versions: " + ", ".join(out) + "."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--codes", nargs="+", default=list(DEFAULTS),
                    help="shipped code names, REG36_N<n>, 5GNR_BG<b>_K<k>_E<e>")
    ap.add_argument("--ebno", type=float, nargs="+", help="Eb/N0 dB (default: per code)")
    ap.add_argument("--words", type=int, help="words per point (default: per code)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--batch", type=int, default=4096, help="words per call of our decoders")
    ap.add_argument("--grfec-budget", type=float, default=300.0,
                    help="seconds of gr-fec decoding per point; it stops early past this")
    ap.add_argument("--no-grfec", action="store_true", help="leave gr-fec out")
    ap.add_argument("--repeat", type=int, default=3,
                    help="time every decoder this many times on the same words, keep the best")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the rows to this file")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.codes, args.ebno, args.words, args.repeat = ["LDPC_N49_K24"], [4.0], 3000, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_threads(1)  # torch's own threads; each decoder row sets its threads itself
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_ldpc_") as tmp:
        for name in args.codes:
            results.append(bench_code(name, args, Path(tmp)))
    if args.json:
        rows = [asdict(r) for _, rows, _ in results for r in rows]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    emit(args, markdown(results, args, versions()))


if __name__ == "__main__":
    main()
