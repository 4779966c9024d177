"""Run the benchmarks and rewrite docs/benchmarks.md (``make bench``).

    .venv/bin/python benchmarks/run_all.py                    # everything, into docs/benchmarks.md
    .venv/bin/python benchmarks/run_all.py --only ldpc 5g-bler
    .venv/bin/python benchmarks/run_all.py --quick --output /tmp/bench.md    # smoke run
    .venv/bin/python benchmarks/run_all.py --list

Each benchmark is a script in this folder with ``main()``, argparse, ``--quick`` and
``--markdown FILE`` (benchlib.add_common_args): it is run in its own process (its own torch
threads and memory), and the Markdown it writes becomes one section of the output, headed by
the exact command, the date, the machine (CPU model, cores, load average at start and end),
the software versions and the wall time. Sections sit between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``: a run rewrites the sections of the benchmarks it ran and keeps every
other section of the existing file as it was. A failed benchmark keeps its old section; the
exit status is then 1.

Adding a benchmark: write ``benchmarks/bench_xyz.py`` as above and add one line to
:data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from genjscc.machine import cpu_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"


class Benchmark(NamedTuple):
    name: str  # the --only name and the section marker
    script: str  # file in benchmarks/
    title: str  # section heading


BENCHMARKS = [
    Benchmark("ldpc", "bench_ldpc.py", "LDPC decoders: ours, ldpc (C++), gr-fec on the same LLRs"),
    Benchmark("5g-bler", "bench_5g_bler.py", "5G NR LDPC BLER against the normal approximation"),
    Benchmark("bp", "bench_bp.py", "BP throughput against ldpc (C++) by batch size"),
    Benchmark("bp-ecct", "bp_ecct_baseline.py", "BP on LDPC(49,24) against the ECCT baseline"),
    Benchmark("ecct", "bench_ecct.py", "ECCT against BP-50 on the shipped ECCT models"),
    Benchmark("serve", "bench_serve.py", "Inference server: requests/s, latency, batching on/off"),
    Benchmark("fuzz-serve", "fuzz_serve.py",
              "Inference server against hostile clients: fuzzing, floods, RSS"),
    Benchmark("fuzz-inputs", "fuzz_inputs.py",
              "Containers and PDUs from a hostile sender: fuzzing, hangs, RSS"),
    Benchmark("jscc", "bench_jscc.py", "Deep JSCC against image codec + 5G LDPC + QAM with AMC"),
    Benchmark("lm", "bench_lm.py", "LM lossless compression against gzip, bzip2, xz, zstd, brotli"),
    Benchmark("lm-exact", "bench_lm_exact.py",
              "LM coding on any machine: exactness, unseen sources, binaries, speed"),
    Benchmark("radio", "bench_radio.py", "Burst OFDM PHY: detection, coded BLER, CPU cost"),
    Benchmark("text", "bench_text.py",
              "Text at equal energy per word: LM-SSCC chains against the text JSCC"),
    Benchmark("resilient", "bench_resilient.py",
              "The loss-resilient token codec against HEIF + erasure-code FEC"),
    Benchmark("text-ecct", "bench_text_ecct.py",
              "The text chains' short codes: ECCT LLR de-rating against BP-50"),
]

HEADER = """# Benchmarks

Written by `benchmarks/run_all.py` (`make bench`); do not edit by hand. Each section was
produced by the command it shows, on the machine it names; re-running one benchmark
(`benchmarks/run_all.py --only NAME`) rewrites its section and leaves the others as they were.
The machine is shared with other jobs: the load average (1 min, of all cores) at the start and
end of each run is given to judge the timings by.
"""

SECTION_RE = re.compile(r"<!-- bench:([\w.-]+) -->\n(.*?)<!-- /bench:\1 -->\n?", re.DOTALL)


# --------------------------------------------------------------------------------- the file


def parse_sections(text: str) -> dict[str, str]:
    """``{name: whole section including its markers}`` of a benchmarks file, in file order."""
    return {m.group(1): m.group(0).rstrip("\n") + "\n" for m in SECTION_RE.finditer(text)}


def merge(old_text: str, new_sections: dict[str, str]) -> str:
    """The output file: header, then the sections in :data:`BENCHMARKS` order (new ones
    replacing old ones), then old sections of benchmarks no longer listed."""
    sections = parse_sections(old_text)
    sections.update(new_sections)
    order = [b.name for b in BENCHMARKS if b.name in sections]
    order += [name for name in sections if name not in order]
    return HEADER + "".join("\n" + sections[name] for name in order)


# ------------------------------------------------------------------------------ the machine


def software() -> str:
    """Python, torch (with its default thread count in this environment) and numpy."""
    import numpy
    import torch

    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    return (f"Python {platform.python_version()}, torch {torch.__version__} (default intra-op "
            f"threads {torch.get_num_threads()}, OMP_NUM_THREADS={omp}), numpy "
            f"{numpy.__version__}")


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def rel(path: str | Path) -> str:
    try:
        return os.path.relpath(path, REPO)
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------- running


def run_one(bench: Benchmark, quick: bool, sw: str) -> str | None:
    """Run one benchmark script; its section text, or None if it failed."""
    script = HERE / bench.script
    args = ["--quick"] if quick else []
    command = " ".join([rel(sys.executable), rel(script), *args])
    print(f"\n=== {bench.name}: {command}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench_{bench.name}_") as tmp:
        md = Path(tmp) / "section.md"
        load_start, start = load(), dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(script), *args, "--markdown", str(md)],
                            cwd=REPO).returncode
        seconds = time.perf_counter() - t0
        if rc != 0 or not md.exists():
            print(f"=== {bench.name} FAILED (exit status {rc})", file=sys.stderr, flush=True)
            return None
        body = md.read_text().strip()
    quick_note = ("\n**Quick smoke run (`--quick`): tiny sizes, not a measurement.**\n"
                  if quick else "")
    meta = [
        ("command", f"`{command}`"),
        ("date", start.strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{cpu_name()}, {os.cpu_count()} cores visible, {platform.system()} "
                    f"{platform.release()}"),
        ("load average", f"{load_start} at start, {load()} at end (shared machine)"),
        ("software", sw),
        ("wall time", f"{seconds:.0f} s"),
    ]
    lines = "\n".join(f"| {k} | {v} |" for k, v in meta)
    print(f"=== {bench.name} done in {seconds:.0f} s", flush=True)
    return (f"<!-- bench:{bench.name} -->\n## {bench.title}\n{quick_note}\n| run | |\n|---|---|\n"
            f"{lines}\n\n{body}\n<!-- /bench:{bench.name} -->\n")


def select(only: list[str] | None) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    names = [n for item in only for n in item.split(",") if n]
    known = {b.name: b for b in BENCHMARKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(known)} (see --list)")
    return [known[n] for n in dict.fromkeys(names)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these (names or a,b)")
    ap.add_argument("--quick", action="store_true", help="each script's tiny smoke run")
    ap.add_argument("--output", type=Path, default=None,
                    help=f"Markdown file to update (default {rel(DEFAULT_OUTPUT)}; with --quick "
                         "an --output is required, so smoke numbers never land in the docs)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:10s} benchmarks/{b.script:24s} {b.title}")
        return 0
    if args.output is None:
        if args.quick:
            ap.error("--quick needs --output FILE (quick numbers do not go into the docs)")
        args.output = DEFAULT_OUTPUT
    selected = select(args.only)
    sw = software()
    new, failed = {}, []
    for bench in selected:
        section = run_one(bench, args.quick, sw)
        if section is None:
            failed.append(bench.name)
        else:
            new[bench.name] = section
            # write after each benchmark: a later failure or interruption keeps this one
            old = args.output.read_text() if args.output.exists() else ""
            args.output.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.output.with_suffix(args.output.suffix + ".tmp")
            tmp.write_text(merge(old, {bench.name: section}))
            tmp.replace(args.output)
    print(f"\nwrote {rel(args.output)}: {', '.join(new) or 'nothing'} updated"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
