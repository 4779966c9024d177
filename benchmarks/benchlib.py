"""Shared parts of the benchmark scripts: the common command-line options, Markdown output, and
the codes and noisy words the LDPC benchmarks decode.

Every script in benchmarks/ has ``main(argv=None)`` with argparse and the options of
:func:`add_common_args` (``--quick``, ``--markdown FILE``, ``--threads N``); it prints its
progress on stdout and ends by writing one Markdown section body (tables, notes, no top-level
heading) with :func:`emit`. ``benchmarks/run_all.py`` adds the command, machine and date.

Conventions (docs/conventions.md): ``llr = ln P(b=0)/P(b=1)``, BPSK ``x = 1 - 2 b`` over real
AWGN with variance ``N0/2 = 1 / (2 R Eb/N0)`` per sample, so ``llr = 2 y / (N0/2)``. Gray QPSK
over complex AWGN is two such channels at the same Eb/N0.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
# the developer's data (text/, images/): $GENJSCC_DATA as for `genjscc train`, else the sibling
# ../shared/data of this checkout; benchmarks are development tools, the product never reads it
DATA = Path(os.environ.get("GENJSCC_DATA") or REPO.parent / "shared" / "data")
LLR_CLIP = 20.0  # every decoder gets the same clipped LLRs (gr-fec overflows on huge ones)


# ------------------------------------------------------------------------- CLI and Markdown


def add_common_args(parser: argparse.ArgumentParser, threads: int = 1) -> None:
    """``--quick`` (smoke run), ``--markdown FILE`` (section body) and ``--threads N``."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (seconds): checks the script, not a measurement")
    parser.add_argument("--markdown", metavar="FILE",
                        help="write the Markdown section body here (default: print it)")
    parser.add_argument("--threads", type=int, default=threads,
                        help=f"torch intra-op threads (default {threads})")


def setup_threads(threads: int) -> int:
    """Set torch's intra-op threads explicitly; returns the number in effect."""
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def emit(args: argparse.Namespace, text: str) -> None:
    """Write the section body to ``args.markdown``, or print it."""
    text = text.rstrip() + "\n"
    if args.markdown:
        Path(args.markdown).write_text(text)
    else:
        print("\n" + text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def fmt_rate(x: float) -> str:
    """Compact words/s: 1234 -> 1.23k."""
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def wilson_interval(errors: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (BLER) from ``errors`` of ``trials``."""
    if trials <= 0:
        return 0.0, 1.0
    p = errors / trials
    den = 1.0 + z * z / trials
    mid = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


# ---------------------------------------------------------------------------------- codes


def regular_ldpc(n: int, dv: int, dc: int, seed: int = 0) -> np.ndarray:
    """A random (dv, dc)-regular H (socket matching, repeated until no double edge)."""
    rng = np.random.default_rng(seed)
    m = n * dv // dc
    for _ in range(1000):
        sockets = rng.permutation(np.repeat(np.arange(n), dv))
        rows = np.repeat(np.arange(m), dc)
        h = np.zeros((m, n), dtype=np.uint8)
        np.add.at(h, (rows, sockets), 1)
        if h.max() == 1:
            return h
    raise RuntimeError("no simple regular graph found")


def nr_subgraph(code) -> tuple[np.ndarray, int]:
    """The part of a 5G NR LDPC code's H that a rate-matched word touches: ``(H_sub, cols)``.

    The first ``cols`` codeword columns hold every transmitted, punctured and filler bit (cols
    = last transmitted column rounded up to a multiple of Z); the base rows kept are those whose
    extension parity column lies among them. Every dropped row has its own parity column of
    degree 1 that is never sent (LLR 0), so its check sends exactly zero to all other bits:
    decoding ``H_sub`` gives the same messages as the full H, at a fraction of the work, as
    receivers do. Raises ``ValueError`` if H does not have that structure.
    """
    z, kb = code.z, code.k_ldpc // code.z
    cols = (int(code.rate_matching_index.max()) // z + 1) * z
    rows = cols - kb * z
    h = code.H.tocsc()
    kept = h[:rows, :]
    if kept[:, cols:].nnz:
        raise ValueError("kept rows touch columns beyond the transmitted part")
    dropped = h[rows:, cols:]
    degree = np.diff(h[:, cols:].indptr)
    if not (dropped.nnz == dropped.shape[0] == h.shape[1] - cols and np.all(degree == 1)):
        raise ValueError("dropped rows do not each own one degree-1 never-sent column")
    return kept[:, :cols].toarray().astype(np.uint8), cols


@dataclass
class Case:
    """A code to decode: H, and how to make the words of :func:`noisy_words`.

    ``encode(info [w, k]) -> (codeword [w, H.shape[1]], sent bits [w, e])``;
    ``recover(llr [w, e]) -> llr [w, H.shape[1]]`` (rate recovery, identity for plain codes).
    """

    name: str
    label: str
    H: np.ndarray
    k: int
    e: int
    encode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    recover: Callable[[np.ndarray], np.ndarray]
    info_positions: np.ndarray

    @property
    def n(self) -> int:
        return self.H.shape[1]

    @property
    def code_rate(self) -> float:
        return self.k / self.e


def _nr_case(name: str, k: int, e: int, base_graph: int) -> Case:
    from genjscc.core.fec.ldpc5g import NR5GLDPC

    code = NR5GLDPC(k, e, base_graph=base_graph)
    h, cols = nr_subgraph(code)

    def encode(info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cw = code.encode_codeword(torch.from_numpy(info).to(torch.float32))
        return cw[:, :cols].numpy().astype(np.uint8), code.rate_match(cw).numpy().astype(np.uint8)

    def recover(llr: np.ndarray) -> np.ndarray:
        return code.rate_recover(torch.from_numpy(llr), filler_llr=LLR_CLIP)[:, :cols].numpy()

    label = f"5G NR BG{base_graph} K={k} E={e} (H {h.shape[0]}x{h.shape[1]})"
    return Case(name, label, h, k, e, encode, recover, np.arange(k))


def get_case(name: str) -> Case:
    """``LDPC_N49_K24`` etc. (shipped codes), ``REG36_N<n>`` (random (3,6)-regular, seed 0),
    ``5GNR_BG<b>_K<k>_E<e>`` (5G NR, rate-matched, decoded on :func:`nr_subgraph`)."""
    from genjscc.core.fec.codes import load_parity_check, systematic_generator

    if name.startswith("5GNR_"):
        fields = name.split("_")[1:]
        bg, k, e = int(fields[0][2:]), int(fields[1][1:]), int(fields[2][1:])
        return _nr_case(name, k, e, bg)
    if name.startswith("REG36_N"):
        n = int(name[len("REG36_N") :])
        h = regular_ldpc(n, 3, 6)
        label = f"(3,6)-regular n={n} (random, seed 0)"
    else:
        h = load_parity_check(name)
        label = name
    g, info_positions = systematic_generator(h)

    def encode(info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cw = ((info @ g) % 2).astype(np.uint8)
        return cw, cw

    return Case(name, label, h, g.shape[0], h.shape[1], encode, lambda llr: llr,
                np.asarray(info_positions))


def noisy_words(case: Case, words: int, ebno_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(llr float32 [words, n], codeword uint8 [words, n])``: random information words, BPSK
    over real AWGN at ``ebno_db`` per information bit, LLRs clipped to +-:data:`LLR_CLIP`."""
    rng = np.random.default_rng(seed)
    codeword, sent = case.encode(rng.integers(0, 2, (words, case.k)))
    noise_var = 1.0 / (2.0 * case.code_rate * 10 ** (ebno_db / 10.0))  # per real sample
    y = 1.0 - 2.0 * sent + math.sqrt(noise_var) * rng.standard_normal(sent.shape)
    llr = case.recover((2.0 * y / noise_var).astype(np.float32))
    return np.clip(llr, -LLR_CLIP, LLR_CLIP).astype(np.float32), codeword


def make_llr(name: str, words: int, ebno_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(llr, H)`` of :func:`noisy_words` for the code ``name`` (bench_bp.py's entry point)."""
    case = get_case(name)
    return noisy_words(case, words, ebno_db, seed)[0], case.H


# ----------------------------------------------------------------------- the ldpc package

# genjscc rule -> (ldpc bp_method, ms_scaling_factor)
LDPC_RULES = {
    "bp": ("product_sum", 1.0),
    "minsum": ("minimum_sum", 1.0),
    "normalized-minsum": ("minimum_sum", 0.75),
}
LDPC_SCHEDULES = {"flooding": "parallel", "layered": "serial"}


def ldpc_cpp_decode(h: np.ndarray, llr: np.ndarray, method: str, scaling: float, schedule: str,
                    iters: int) -> tuple[np.ndarray, float, float]:
    """Decode with ``ldpc.BpDecoder`` word by word: ``(bits, seconds, mean iterations)``.

    ``ldpc`` takes the hard decision and the per-bit flip probability ``1 / (1 + e^|llr|)``
    (received-vector mode), the same channel information as the LLR.
    """
    from ldpc import BpDecoder

    dec = BpDecoder(h, error_rate=0.1, max_iter=iters, bp_method=method,
                    ms_scaling_factor=scaling, schedule=schedule,
                    input_vector_type="received_vector")
    hard = (llr < 0).astype(np.uint8)
    probs = 1.0 / (1.0 + np.exp(np.abs(llr.astype(np.float64))))
    out = np.empty_like(hard)
    its = 0
    t0 = time.perf_counter()
    for i in range(llr.shape[0]):
        dec.update_channel_probs(probs[i])
        out[i] = dec.decode(hard[i])
        its += dec.iter
    return out, time.perf_counter() - t0, its / max(1, llr.shape[0])


# ----------------------------------------------------------------------------------- JSCC


def jscc_throughput(model, height: int, width: int, repeats: int,
                    clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """(encoder, decoder) images per second of ``clock`` (wall by default; pass
    ``time.process_time`` for CPU seconds) for one ``height x width`` image at a time."""
    image = torch.rand(1, 3, height, width)
    with torch.no_grad():
        x = model.encode(image, 10.0)
        model.decode(x, 10.0, height, width)  # warm-up
        start = clock()
        for _ in range(repeats):
            x = model.encode(image, 10.0)
        enc = repeats / (clock() - start)
        start = clock()
        for _ in range(repeats):
            model.decode(x, 10.0, height, width)
        dec = repeats / (clock() - start)
    return enc, dec
