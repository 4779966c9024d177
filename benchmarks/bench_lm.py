"""LM lossless compression against classic compressors: bits per byte, encode and decode speed.

    .venv/bin/python benchmarks/bench_lm.py                     # everything (about 30-40 min)
    .venv/bin/python benchmarks/bench_lm.py --models small --no-big
    .venv/bin/python benchmarks/bench_lm.py --quick             # smoke run

On the same bytes, in one run: the LM models of ``genjscc compress`` (``small``: the shipped
byte-level model; ``smollm2``: SmolLM2-135M, on shorter samples because it codes a few hundred
bytes per second on a CPU; ``--models ... smollm2@16384`` adds the same with 16 KiB chunks,
a longer context, at a few tens of bytes per second) beside ``gzip -9``, ``bzip2 -9``,
``xz -9e``, ``zstd -19 --long`` and ``brotli -q 11`` (the command-line tools). Every output
is decoded again and compared with the input; sizes are whole files (the ``.gjz`` container
with its header, chunk table and CRCs; the tools' own headers).
Ratios are to ``xz -9e`` on the same bytes.

Files: the held-out validation text of ``genjscc train lm`` (Milton's Areopagitica: English
prose; Shakespeare's Tempest; the held-out tails of the Linux and Python documentation), the
first 128 KiB of each, and two binary files (an ELF shared object of Debian's GNU Radio and the
float32 weights of the shipped ECCT model). Speeds are KB/s of original bytes (1 KB = 1000
bytes), with the default chunk (2048 bytes), batch and one torch thread; the classic tools
run as subprocesses (their times include starting the process).

``--big MB`` (default 10) adds a round trip of MB megabytes (the validation text repeated and
the binaries appended) through the small model: exact or not, and its speeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchlib import DATA, REPO, add_common_args, emit, setup_threads, table
from genjscc.core.source import compress, decompress, load_model
from genjscc.core.source.codec import DEFAULT_CHUNK_SIZE
from genjscc.train.lm import ENGLISH_PROSE, split_corpus

ELF = Path("/usr/lib/x86_64-linux-gnu/libgnuradio-pmt.so.3.10.5")
WEIGHTS = REPO / "python/genjscc/zoo/weights/ecct-polar_n64_k32.safetensors"
TOOLS = {  # name -> (compress argv, decompress argv)
    "gzip -9": (["gzip", "-9", "-c", "-n"], ["gzip", "-d", "-c"]),
    "bzip2 -9": (["bzip2", "-9", "-c"], ["bzip2", "-d", "-c"]),
    "xz -9e": (["xz", "-9e", "-c", "-T1"], ["xz", "-d", "-c"]),
    "zstd -19 --long": (["zstd", "-19", "--long", "-c", "-q", "--single-thread"],
                        ["zstd", "-d", "--long", "-c", "-q"]),
    "brotli -q 11": (["brotli", "-q", "11", "-c"], ["brotli", "-d", "-c"]),
}
TARGET_SMALL = 0.75  # x xz -9e on English prose, at >= 20 KB/s encode and decode
TARGET_SMOLLM2 = 1.0  # bits/byte on English prose


@dataclass
class Result:
    """One coder on one sample: sizes, wall seconds and CPU seconds of each direction."""

    coder: str
    sample: str
    size: int
    coded: int
    encode_s: float
    decode_s: float
    exact: bool
    encode_cpu_s: float = 0.0
    decode_cpu_s: float = 0.0

    @property
    def bpb(self) -> float:
        return 8 * self.coded / self.size

    def speeds(self) -> tuple[float, float, float, float]:
        """KB/s encode and decode, per wall second and per CPU second."""
        kb = self.size / 1e3
        return (kb / self.encode_s, kb / self.decode_s, kb / max(self.encode_cpu_s, 1e-9),
                kb / max(self.decode_cpu_s, 1e-9))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(name: str, data: bytes) -> Result:
    comp, decomp = TOOLS[name]
    c0, t0 = _children_cpu(), time.perf_counter()
    coded = subprocess.run(comp, input=data, capture_output=True, check=True).stdout
    c1, t1 = _children_cpu(), time.perf_counter()
    back = subprocess.run(decomp, input=coded, capture_output=True, check=True).stdout
    c2, t2 = _children_cpu(), time.perf_counter()
    return Result(name, "", len(data), len(coded), t1 - t0, t2 - t1, back == data,
                  c1 - c0, c2 - c1)


def run_lm(model, data: bytes, label: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Result:
    c0, t0 = time.process_time(), time.perf_counter()
    blob = compress(data, model, chunk_size=chunk_size)
    c1, t1 = time.process_time(), time.perf_counter()
    result = decompress(blob, model)
    c2, t2 = time.process_time(), time.perf_counter()
    return Result(label, "", len(data), len(blob), t1 - t0, t2 - t1,
                  result.ok and result.data == data, c1 - c0, c2 - c1)


def samples(args: argparse.Namespace) -> dict[str, bytes]:
    """name -> bytes: the held-out text pieces, then the binaries."""
    size = 4096 if args.quick else args.sample_bytes
    out = {name: data[:size] for name, data in split_corpus(args.data)[1]}
    out = dict(sorted(out.items(), key=lambda kv: kv[0] != ENGLISH_PROSE))  # prose first
    if ELF.is_file():
        out[f"{ELF.name} (ELF)"] = ELF.read_bytes()[:size]
    if WEIGHTS.is_file():
        out[f"{WEIGHTS.name} (float32)"] = WEIGHTS.read_bytes()[:size]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--models", nargs="+", default=["small", "smollm2"],
                        help="LM models, MODEL or MODEL@CHUNK for another chunk size than "
                        "the default (%(default)s)")
    parser.add_argument("--data", type=Path, default=DATA / "text")
    parser.add_argument("--sample-bytes", type=int, default=128 * 1024)
    parser.add_argument("--smollm2-bytes", type=int, default=16 * 1024,
                        help="sample size for smollm2 (English prose gets twice this)")
    parser.add_argument("--big", type=float, default=10.0, help="MB of the big round trip")
    parser.add_argument("--no-big", action="store_true", help="skip the big round trip")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    threads = setup_threads(args.threads)
    files = samples(args)
    results: list[Result] = []

    def add(result: Result, sample: str) -> None:
        result.sample = sample
        results.append(result)
        enc, dec, enc_cpu, dec_cpu = result.speeds()
        print(f"{result.coder:16s} {sample:48s} {result.size:8d} B {result.bpb:6.3f} bits/B "
              f"enc {enc:8.1f} ({enc_cpu:8.1f} CPU) KB/s dec {dec:8.1f} ({dec_cpu:8.1f} CPU) "
              f"KB/s exact {result.exact}", flush=True)

    lm_samples: dict[str, dict[str, bytes]] = {}
    for spec in args.models:
        name, _, chunk = spec.partition("@")
        model = load_model(name)
        chunk_size = int(chunk) if chunk else DEFAULT_CHUNK_SIZE
        if model.model_id.startswith("smollm2"):
            short = 2048 if args.quick else args.smollm2_bytes
            chosen = {f"{n}[:{2 * short if n == ENGLISH_PROSE else short}]":
                      d[:2 * short if n == ENGLISH_PROSE else short]
                      for n, d in files.items() if not n.endswith(")")}
        else:
            chosen = files
        lm_samples[spec] = chosen
        for name, data in chosen.items():
            add(run_lm(model, data, _label(name, model, chunk_size), chunk_size), name)
    baselines = {name: data for chosen in lm_samples.values() for name, data in chosen.items()}
    baselines.update(files)
    for name, data in baselines.items():
        for tool in TOOLS:
            add(run_tool(tool, data), name)
    big = None if args.no_big else _big_round_trip(args, files)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    emit(args, _markdown(args, results, files, lm_samples, big, threads))
    return 0 if all(r.exact for r in results) and (big is None or big["exact"]) else 1


def _label(spec: str, model, chunk_size: int) -> str:
    label = "lm-small" if spec == "small" else model.model_id
    return label if chunk_size == DEFAULT_CHUNK_SIZE else f"{label} chunk {chunk_size}"


def _big_round_trip(args: argparse.Namespace, files: dict[str, bytes]) -> dict:
    size = int((0.05 if args.quick else args.big) * 1e6)
    seed = b"".join(files.values())
    data = (seed * (size // len(seed) + 1))[:size]
    model = load_model("small")
    print(f"big round trip: {size} bytes through lm-small", flush=True)
    result = run_lm(model, data, "lm-small")
    enc, dec, enc_cpu, dec_cpu = result.speeds()
    return {"bytes": size, "exact": result.exact, "bpb": result.bpb, "encode_kbs": enc,
            "decode_kbs": dec, "encode_cpu_kbs": enc_cpu, "decode_cpu_kbs": dec_cpu}


def _markdown(args, results: list[Result], files: dict[str, bytes], lm_samples: dict,
              big: dict | None, threads: int) -> str:
    coders = list(dict.fromkeys(r.coder for r in results))
    by = {(r.coder, r.sample): r for r in results}
    out = [f"Bits per byte (whole output file, lower is better) and, in parentheses, the ratio "
           f"to `xz -9e` on the same bytes. LM coding with {threads} torch thread, the default "
           f"chunk ({DEFAULT_CHUNK_SIZE} bytes) unless the column names another, default "
           "batch; every output decoded again and compared "
           f"({'all exact' if all(r.exact for r in results) else 'NOT ALL EXACT'}).\n"]
    samples_all = list(dict.fromkeys(r.sample for r in results))
    rows = []
    for sample in samples_all:
        xz = by.get(("xz -9e", sample))
        row = [f"`{sample}`", by[(coders[-1], sample)].size]
        for coder in coders:
            r = by.get((coder, sample))
            row.append("" if r is None else f"{r.bpb:.3f}" + (f" ({r.bpb / xz.bpb:.2f})"
                                                              if xz else ""))
        rows.append(row)
    out.append(table(["sample", "bytes", *coders], rows))
    out.append("\nSpeed, KB/s of original bytes, encode / decode, per second of wall time "
               "and (in parentheses) per second of CPU time of the coder (the machine is "
               "shared: see the load average above; CPU time is what the coder itself costs):\n")
    rows = []
    for sample in samples_all:
        row = [f"`{sample}`"]
        for coder in coders:
            r = by.get((coder, sample))
            if r is None:
                row.append("")
                continue
            enc, dec, enc_cpu, dec_cpu = r.speeds()
            row.append(f"{enc:.1f} / {dec:.1f} ({enc_cpu:.1f} / {dec_cpu:.1f})")
        rows.append(row)
    out.append(table(["sample", *coders], rows))
    out.append("\n" + _targets(by, lm_samples))
    if big is not None:
        out.append(f"\nBig round trip through lm-small: {big['bytes']:,} bytes (the samples "
                   f"above repeated), {'exact' if big['exact'] else 'NOT EXACT'}, "
                   f"{big['bpb']:.3f} bits/byte, encode {big['encode_kbs']:.1f} KB/s, decode "
                   f"{big['decode_kbs']:.1f} KB/s ({big['encode_cpu_kbs']:.1f} / "
                   f"{big['decode_cpu_kbs']:.1f} KB/s per CPU second).")
    names = ", ".join(f"`{n}` sha256 {hashlib.sha256(d).hexdigest()[:16]}..."
                      for n, d in files.items() if n.endswith(")"))
    out.append(f"\nBinary samples: the first {args.sample_bytes:,} bytes of {names}. The "
               "SmolLM2 samples are the first bytes of the text pieces (twice as many of the "
               "English prose) because it codes a few hundred bytes per second here; its "
               "baselines are on the same shorter samples.")
    return "\n".join(out)


def _targets(by: dict, lm_samples: dict) -> str:
    lines = ["Targets (English prose: the held-out `" + ENGLISH_PROSE + "`; for "
             "SmolLM2 also every other held-out text):\n"]
    for (coder, sample), r in by.items():
        if coder in TOOLS or sample.endswith(")"):
            continue
        xz = by[("xz -9e", sample)]
        enc, dec, enc_cpu, dec_cpu = r.speeds()
        if coder == "lm-small" and sample.startswith(ENGLISH_PROSE):
            ratio_met = r.bpb <= TARGET_SMALL * xz.bpb
            lines.append(
                f"* lm-small: {r.bpb:.3f} bits/byte = {r.bpb / xz.bpb:.2f} x xz -9e (target <= "
                f"{TARGET_SMALL}: **{'met' if ratio_met else 'not met'}**); encode {enc:.1f} / "
                f"decode {dec:.1f} KB/s of wall time (target >= 20: "
                f"**{'met' if min(enc, dec) >= 20 else 'not met'}** on this shared machine), "
                f"{enc_cpu:.1f} / {dec_cpu:.1f} KB/s per CPU second of one thread "
                f"(**{'met' if min(enc_cpu, dec_cpu) >= 20 else 'not met'}**)")
        elif coder.startswith("smollm2"):
            met = r.bpb <= TARGET_SMOLLM2
            lines.append(f"* {coder}: {r.bpb:.3f} bits/byte on `{sample}` (target <= "
                         f"{TARGET_SMOLLM2}): **{'met' if met else 'not met'}**")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
