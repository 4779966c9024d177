"""Containers and PDUs from a hostile sender: inputs tried, refusals, lost chunks, crashes,
hangs, silent wrong outputs and memory growth.

    .venv/bin/python benchmarks/fuzz_inputs.py [--inputs 100000] [--seed 15]

Two harnesses, ``--inputs`` each, seeded (genjscc.testing.fuzz):

1. Containers: four real containers of lm-small (English in 64-byte model chunks; a mix of
   model, stored, xz and zstd chunks; a whole-input xz container; an old version-2
   container) take 1-3 random edits each (bit flips, cuts, inserted or repeated bytes) and go
   through ``decompress`` (the CLI's path, with a 64 KiB decoding budget). Each input must
   give the original bytes, a result that names its lost chunks, or a ContainerError; a
   result that claims to be whole but differs from the original is a silent wrong output;
   any other exception is a crash; more than 10 s is a hang.
2. PDUs: random messages (genjscc.testing.fuzz.random_pdu: float, complex and u8 vectors
   with NaN/inf, wrong sizes, random metadata, non-PDUs) and mutated containers as u8 PDUs,
   round-robin into the PDU decoder blocks (ecct_decoder, ldpc_decoder, soft_demapper,
   jscc_image_decoder, lm_source_decoder) through their ``process``, as the scheduler calls
   it. Most of the JSCC decoder's inputs are real frames of a 32x32 image, tampered with
   (genjscc.testing.fuzz.tampered_jscc_frame). Each must give a PDU, keep a segment for
   later, or raise a PduError (logged, counted, dropped); a float output with NaN or inf is
   a silent wrong output.

The resident memory of this process is read after the first 2 % of the inputs (models
loaded, caches warm) and at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from benchlib import REPO, add_common_args, emit, setup_threads, table
from genjscc.testing.fuzz import jscc_image_frames, mutate, random_pdu, tampered_jscc_frame

HANG_S = 10.0
BUDGET = 64 << 10
# short inputs: every container that survives its mutation runs the model on its chunks
TEXT = (b"Language models compress text because they predict it; a radio link needs the "
        b"receiver to predict the same.")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def base_containers(model) -> list[tuple[str, bytes, bytes]]:
    """(name, container, original bytes) of the four starting points."""
    from genjscc.core.source import compress

    rng = np.random.default_rng(0)
    mixed = TEXT[:60] + rng.integers(0, 256, 60, dtype=np.uint8).tobytes() + bytes(120)
    v2 = REPO / "tests" / "data" / "lm-small-rows3-unblocked.gjz"
    v2_text = v2.with_suffix(".txt").read_bytes()
    return [("text", compress(TEXT, model, chunk_size=64, keep_chunks=True), TEXT),
            ("mixed", compress(mixed, model, chunk_size=60, keep_chunks=True), mixed),
            ("whole-xz", compress(bytes(range(256)) * 8, model), bytes(range(256)) * 8),
            ("v2", v2.read_bytes(), v2_text)]


def fuzz_containers(model, count: int, seed: int) -> dict:
    from genjscc.core.source import decompress
    from genjscc.errors import GenjsccError

    rng = np.random.default_rng(seed)
    bases = base_containers(model)
    stats = Counter()
    crashes: list[str] = []
    slowest, rss_start = 0.0, None
    start = time.monotonic()
    for i in range(count):
        name, blob, original = bases[i % len(bases)]
        for _ in range(int(rng.integers(1, 4))):
            blob = mutate(blob, rng)
        t0 = time.monotonic()
        try:
            result = decompress(blob, model, use_placeholder=bool(rng.integers(2)),
                                max_output=BUDGET)
            if result.ok:
                stats["intact" if result.data == original else "wrong"] += 1
            else:
                stats["chunks_lost"] += 1
        except GenjsccError:
            stats["refused"] += 1
        except Exception:
            stats["crash"] += 1
            crashes.append(f"{name}: {traceback.format_exc(limit=2)}")
        took = time.monotonic() - t0
        slowest = max(slowest, took)
        stats["hang"] += took > HANG_S
        if i + 1 == max(1, count // 50):
            rss_start = rss_mb()
        if (i + 1) % 10_000 == 0:
            print(json.dumps({"containers": i + 1, **stats}), flush=True)
    return {"inputs": count, **{k: stats[k] for k in ("intact", "chunks_lost", "refused",
                                                      "wrong", "crash", "hang")},
            "slowest_s": slowest, "seconds": time.monotonic() - start,
            "rss_start_mb": rss_start, "rss_end_mb": rss_mb(), "crashes": crashes[:5]}


def decoder_blocks() -> dict:
    from gnuradio import genjscc

    return {"ecct_decoder": genjscc.ecct_decoder(code="POLAR_N64_K32"),
            "ldpc_decoder": genjscc.ldpc_decoder(code="POLAR_N64_K32", crc="", num_iters=5),
            "soft_demapper": genjscc.soft_demapper(modulation="16qam"),
            "jscc_image_decoder": genjscc.jscc_image_decoder(symbols_per_frame=128),
            "lm_source_decoder": genjscc.lm_source_decoder(max_output=BUDGET)}


def u8_container_pdu(blob: bytes):
    import pmt

    return pmt.cons(pmt.make_dict(), pmt.to_pmt(np.frombuffer(blob, np.uint8).copy()))


def fuzz_pdus(model, count: int, seed: int) -> dict:
    import pmt

    from genjscc.blocks._pdu import PduError

    rng = np.random.default_rng(seed)
    blocks = decoder_blocks()
    for block in blocks.values():  # refusals are counted here, not logged one per input
        block.logger.set_level("off")
    bases = base_containers(model)
    frames = jscc_image_frames()
    names = list(blocks)
    per = {n: Counter() for n in names}
    crashes: list[str] = []
    slowest, rss_start = 0.0, None
    start = time.monotonic()
    for i in range(count):
        name = names[i % len(names)]
        if name == "lm_source_decoder" and rng.random() < 0.7:
            msg = u8_container_pdu(mutate(bases[int(rng.integers(len(bases)))][1], rng))
        elif name == "jscc_image_decoder" and rng.random() < 0.8:
            msg = tampered_jscc_frame(frames, rng)
        else:
            msg = random_pdu(rng)
        t0 = time.monotonic()
        try:
            outs = blocks[name].process(msg)
            outs = outs if isinstance(outs, list) else [outs]
            per[name]["output" if outs else "held"] += 1  # held: a segment kept for later
            for out in outs:
                data = pmt.to_python(pmt.cdr(out))
                per[name]["wrong"] += data.dtype.kind in "fc" and not np.isfinite(data).all()
        except PduError:
            per[name]["refused"] += 1
        except Exception:
            per[name]["crash"] += 1
            crashes.append(f"{name}: {traceback.format_exc(limit=2)}")
        took = time.monotonic() - t0
        slowest = max(slowest, took)
        per[name]["hang"] += took > HANG_S
        if i + 1 == max(1, count // 50):
            rss_start = rss_mb()
        if (i + 1) % 10_000 == 0:
            print(json.dumps({"pdus": i + 1}), flush=True)
    return {"inputs": count, "blocks": {n: dict(c) for n, c in per.items()},
            "slowest_s": slowest, "seconds": time.monotonic() - start,
            "rss_start_mb": rss_start, "rss_end_mb": rss_mb(), "crashes": crashes[:5]}


def growth(stats: dict) -> str:
    return f"{100 * (stats['rss_end_mb'] / stats['rss_start_mb'] - 1):+.1f} %"


def report(c: dict, p: dict) -> str:
    rows = []
    for name, counts in p["blocks"].items():
        inputs = sum(counts.get(k, 0) for k in ("output", "held", "refused", "crash"))
        rows.append([name, f"{inputs:,}", f"{counts.get('output', 0):,}",
                     f"{counts.get('held', 0):,}", f"{counts.get('refused', 0):,}",
                     counts.get("wrong", 0), counts.get("crash", 0), counts.get("hang", 0)])
    lines = [
        f"Containers: {c['inputs']:,} mutated lm-small containers through `decompress` "
        f"({BUDGET // 1024} KiB decoding budget) in {c['seconds']:.0f} s; slowest input "
        f"{c['slowest_s']:.2f} s.",
        "",
        table(["inputs", "original bytes", "lost chunks named", "refused", "silent wrong",
               "crashes", "hangs (> 10 s)", "RSS after 2 % -> end", "growth"],
              [[f"{c['inputs']:,}", f"{c['intact']:,}", f"{c['chunks_lost']:,}",
                f"{c['refused']:,}", c["wrong"], c["crash"], c["hang"],
                f"{c['rss_start_mb']:.0f} -> {c['rss_end_mb']:.0f} MB", growth(c)]]),
        "",
        f"PDUs: {p['inputs']:,} random messages (and mutated containers for the LM decoder) "
        f"into the decoder blocks' `process` in {p['seconds']:.0f} s; slowest "
        f"{p['slowest_s']:.2f} s; RSS {p['rss_start_mb']:.0f} -> {p['rss_end_mb']:.0f} MB "
        f"({growth(p)}).",
        "",
        table(["block", "inputs", "PDU out", "held (segment kept)", "refused (PduError)",
               "non-finite out", "crashes", "hangs (> 10 s)"], rows),
    ]
    for crash in dict.fromkeys(c["crashes"] + p["crashes"]):  # each distinct one once
        lines += ["", "```", crash.strip(), "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs per harness")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=2,
                    help="run the two harnesses in this many processes (1 or 2)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.inputs = 500
    setup_threads(args.threads)
    jobs = [("containers", args.inputs, args.seed), ("pdus", args.inputs, args.seed + 1)]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            containers, pdus = pool.starmap(run_harness, jobs)
    else:
        containers, pdus = (run_harness(*job) for job in jobs)
    emit(args, report(containers, pdus))


def run_harness(name: str, count: int, seed: int) -> dict:
    """One harness in this process (a pool worker: one torch thread)."""
    import torch

    torch.set_num_threads(1)
    from genjscc.core.source import load_model

    harness = fuzz_containers if name == "containers" else fuzz_pdus
    stats = harness(load_model("small"), count, seed)
    print(json.dumps({k: v for k, v in stats.items() if k != "crashes"}), flush=True)
    return stats


if __name__ == "__main__":
    main()
