"""End-to-end demo: real GNU Radio flowgraphs and the core library, with a report.

``genjscc demo`` runs a list of *parts* (:data:`genjscc.demo.PARTS`, in that order; ``--parts``
picks some) and writes DIR/report.md with one or more sections per part, PNG plots beside
closed-form or reference curves, and DIR/results.json with every measured number:

  ``links``  uncoded QAM packets with a CRC-24A over a GNU Radio PDU channel (ideal timing and
             CSI) and over a GNU Radio OFDM loopback; BER and packet delivery vs Eb/N0;
  ``coded``  the same packets with 5G NR LDPC (CRC -> LDPC -> QAM -> channel -> soft demapper ->
             BP -> CRC check) beside the uncoded link at the same Eb/N0 per payload bit;
  ``amc``    link adaptation with the TS 38.214 MCS tables when the SNR estimate is wrong: the
             cliff (true SNR below the estimate) and the leveling (above it).
  ``sscc``   LM-SSCC: held-out English text compressed by lm-small (and by xz and gzip),
             sent as packets through the coded link; text recovered vs Es/N0 and vs energy
             per text bit;
  ``jscc``   Deep JSCC image transmission beside image codec + 5G LDPC + QAM with AMC, with an
             exact and with a wrong SNR estimate, and a grid of reconstructions.

Each part's options are listed under its name below.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from genjscc.demo import PARTS, DemoPart

EPILOG = """\
examples:
  OMP_NUM_THREADS=1 genjscc demo              every part, report in demo-report/ (one OpenMP
                                              thread: much faster on a busy machine)
  genjscc demo --out out/ --parts coded,amc   only the coded link and the AMC cliff
  genjscc demo --modulations qpsk --packets 100 --coded-packets 100 --cliff-words 50
                                              a quicker, noisier run
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--out", type=Path, default=Path("demo-report"),
                        help="directory for report.md, the PNG plots and results.json")
    parser.add_argument("--parts", default=",".join(p.name for p in PARTS),
                        help="comma-separated parts to run, in the report's order "
                             f"(default: all: {', '.join(p.name for p in PARTS)})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    for part in PARTS:
        group = parser.add_argument_group(f"part '{part.name}'", part.help)
        importlib.import_module(part.module).add_arguments(group)


def _selected(parts: str) -> list[DemoPart]:
    names = [name.strip().lower() for name in parts.split(",") if name.strip()]
    known = {p.name: p for p in PARTS}
    for name in names:
        if name not in known:
            raise ValueError(f"unknown demo part {name!r}; use {', '.join(known)}")
    if not names:
        raise ValueError("--parts names no part")
    return [p for p in PARTS if p.name in names]


def run(args: argparse.Namespace) -> int:
    from genjscc.core.threads import torch_threads

    # One torch thread for every part: the flowgraphs' small tensor ops (and the one-codeword
    # BP calls) with two intra-op threads ran 3-5x slower on the shared 2-core machine
    # (links part 108 s vs 32 s, coded part 223 s vs 42 s). This covers the calling thread;
    # GNU Radio's block threads follow OMP_NUM_THREADS only (`make demo` sets it to 1).
    with torch_threads(1):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from genjscc.demo import report

    parts = _selected(args.parts)
    modules = [importlib.import_module(p.module) for p in parts]
    for module in modules:  # bad options of any part fail before minutes of work
        check = getattr(module, "check_arguments", None)
        if check is not None:
            check(args)
    args.out.mkdir(parents=True, exist_ok=True)
    sections, results, seconds = [], {}, {}
    for part, module in zip(parts, modules, strict=True):
        start = time.perf_counter()
        part_sections, part_results = module.run(args, args.out)
        seconds[part.name] = round(time.perf_counter() - start, 1)
        sections += part_sections
        results.update(part_results)
        # written after every part: a long run that fails late keeps what it measured
        (args.out / "results.json").write_text(
            json.dumps({**results, "seconds": seconds}, indent=1))
    command = "genjscc demo " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "genjscc demo"
    timing = ", ".join(f"{name} {s:g} s" for name, s in seconds.items())
    path = report.write_report(args.out, sections, command, note=f"Wall time per part: {timing}.")
    print(f"report written to {path}")
    return 0
