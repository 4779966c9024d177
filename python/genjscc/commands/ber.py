"""Monte-Carlo BER/BLER of a channel code and decoder over an Eb/N0 sweep.

Random information words are encoded, Gray-mapped, sent over AWGN or Rayleigh block fading
(perfect CSI), demapped to exact LLRs, rate-recovered and decoded. Eb/N0 is per information bit
(docs/conventions.md). Each point stops after --min-errors block errors or --max-words words;
a point without any error ends the sweep. BER and BLER count the information bits; the
"BER cw" column counts all n codeword bits (the convention of the ECCT papers).

--code takes a shipped code name (see the list below), a file (.alist, or a dense 0/1 .txt
matrix with one row of H per line), a 5G NR LDPC spec "5gnr:bg2:k=512:e=1024" (its Q_m is
set from --modulation unless the spec gives qm=), or "uncoded:N" (N free bits, use
--decoder none) for the uncoded reference.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from typing import Any

import numpy as np
import torch

from genjscc.commands._args import parse_number_list
from genjscc.core.fec.codes import Code
from genjscc.errors import GenjsccError

EPILOG = """\
examples:
  genjscc ber --code LDPC_N49_K24 --decoder bp --ebno 4,5,6
  genjscc ber --code 5gnr:bg2:k=512:e=1024 --decoder bp-layered --iters 20 \\
              --modulation qpsk --ebno 0:2:0.5 --plot bg2.png
  genjscc ber --code my_code.alist --decoder normalized-minsum -O scaling=0.8 --ebno 2:5:1 --json
  genjscc ber --code POLAR_N64_K32 --decoder bp --channel rayleigh --ebno 5,10,15
  genjscc ber --code uncoded:64 --decoder none --modulation 16qam --ebno 0:10:2
  genjscc ber --code POLAR_N64_K32 --decoder ecct --model ecct-polar_n64_k32 --ebno 4,5,6
  genjscc ber --code POLAR_N64_K32 --decoder ecct --ebno 4,5,6 --backend tcp://gpu-host:5555
                                      the decoder runs on a genjscc serve inference server

A negative Eb/N0 list needs the = form: --ebno=-2:2:1.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from genjscc.core.fec.codes import list_codes
    from genjscc.core.fec.decoders import list_decoders
    from genjscc.core.mapping import MODULATIONS
    from genjscc.core.sim.ber import CHANNELS

    codes = textwrap.fill(", ".join(list_codes()), width=90, initial_indent="  ",
                          subsequent_indent="  ")
    parser.epilog = f"{EPILOG}\nshipped codes:\n{codes}\n"
    parser.add_argument("--code", required=True, metavar="NAME_OR_FILE_OR_SPEC",
                        help="shipped code name, .alist/.txt file, 5G NR spec or uncoded:N")
    parser.add_argument("--decoder", default="bp", metavar="NAME",
                        help=f"one of: {', '.join(list_decoders())} (default: bp)")
    parser.add_argument("--iters", type=int, default=50,
                        help="maximum decoding iterations (default: 50)")
    parser.add_argument("--model", default=None, metavar="MODEL",
                        help="trained decoder model (ecct): zoo name or .safetensors file "
                        "(default: the zoo model of the code)")
    parser.add_argument("-O", "--decoder-option", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="extra decoder option, repeatable, e.g. -O scaling=0.8 -O offset=0.3")
    parser.add_argument("--ebno", required=True, metavar="LIST",
                        help="Eb/N0 values in dB: '4,5,6', a range START:STOP:STEP (STOP "
                        "included) such as '0:6:0.5', or both comma-separated")
    parser.add_argument("--channel", default="awgn", choices=CHANNELS,
                        help="awgn, or rayleigh block fading with perfect CSI (default: awgn)")
    parser.add_argument("--block-length", type=int, default=None, metavar="SYMBOLS",
                        help="rayleigh: symbols per fading coefficient (default: one per word)")
    parser.add_argument("--modulation", default="bpsk", metavar="MOD",
                        help=f"one of: {', '.join(MODULATIONS)} (default: bpsk)")
    parser.add_argument("--min-errors", type=int, default=100,
                        help="stop a point after this many block errors (default: 100)")
    parser.add_argument("--max-words", type=int, default=100_000,
                        help="stop a point after this many words (default: 100000)")
    parser.add_argument("--batch", type=int, default=None,
                        help="words per batch (default: about 2**18 coded bits)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--backend", default="local", metavar="tcp://HOST:PORT",
                        help="decode on a genjscc serve inference server (ecct: a model of "
                        "the code; BP family: a bp:CODE model) instead of in-process")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list (one object per Eb/N0) instead of a table")
    parser.add_argument("--plot", metavar="OUT.png", default=None,
                        help="write BER/BLER curves with the uncoded and normal-approximation "
                        "references to a PNG")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it only shows on a terminal anyway)")


# ---------------------------------------------------------------------------------- parsing


def parse_ebno_list(text: str) -> list[float]:
    """``"4,5,6"``, ``"0:6:0.5"`` (stop included) or a comma-separated mix -> list of floats."""
    return parse_number_list(text, "--ebno")


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_decoder_options(items: list[str]) -> dict[str, Any]:
    """``["scaling=0.8", "early_stop=false"]`` -> ``{"scaling": 0.8, "early_stop": False}``."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise GenjsccError(f"--decoder-option {item!r}: write KEY=VALUE, e.g. scaling=0.8")
        options[key] = _parse_value(value)
    return options


def resolve_code(spec: str, bits_per_symbol: int) -> Code:
    """Build the code of ``--code``: ``uncoded:N``, a 5G spec (Q_m defaulted), name or file."""
    from genjscc.core.fec.codes import get_code
    from genjscc.core.sim.ber import uncoded_code

    text = spec.strip()
    lowered = text.lower()
    if lowered == "uncoded" or lowered.startswith("uncoded:"):
        length = lowered.partition(":")[2].removeprefix("n=") or "64"
        if not length.isdigit() or int(length) < 1:
            raise GenjsccError(f"--code {spec!r}: write uncoded:N with N a positive integer")
        return uncoded_code(int(length))
    if lowered.startswith("5gnr"):
        fields = {f.strip().split("=")[0] for f in lowered.replace(",", ":").split(":")}
        if not fields & {"qm", "modulation_order"}:
            text = f"{text}:qm={bits_per_symbol}"
    return get_code(text)


# ---------------------------------------------------------------------------------- output


def _table(points: list, header: str) -> str:
    lines = [header, "Eb/N0 dB  Es/N0 dB     words  bit err  blk err        BER       BLER"
             "  -ln(BER)     BER cw  time s"]
    for p in points:
        neg_ln = f"{p.neg_ln_ber:8.3f}" if math.isfinite(p.neg_ln_ber) else "     inf"
        lines.append(
            f"{p.ebno_db:8.2f}  {p.esno_db:8.2f}  {p.words:8d}  {p.bit_errors:7d}  "
            f"{p.block_errors:7d}  {p.ber:9.3e}  {p.bler:9.3e}  {neg_ln}  {p.ber_codeword:9.3e}"
            f"  {p.seconds:6.1f}"
        )
    return "\n".join(lines)


def write_plot(path: str, points: list, code: Code, title: str, modulation: str,
               channel: str) -> None:
    """BER and BLER vs Eb/N0 with the uncoded closed form and, for AWGN with BPSK/QPSK, the
    normal-approximation BLER of an (e, k) code."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()
    from genjscc.core.mapping import Constellation
    from genjscc.core.theory import ber_awgn, ber_bpsk_rayleigh, normal_approximation_bler

    bps = Constellation(modulation).bits_per_symbol
    ebno = np.array([p.ebno_db for p in points])
    grid = np.linspace(ebno.min(), ebno.max(), 200) if ebno.size > 1 else ebno
    fig, ax = plt.subplots(figsize=(7, 5))
    for attr, label, style in (("ber", "BER", "o-"), ("bler", "BLER", "s-")):
        y = np.array([getattr(p, attr) for p in points])
        keep = y > 0  # log axis: points without errors are left out
        ax.semilogy(ebno[keep], y[keep], style, label=f"{label} (simulated)")
    if channel == "awgn":
        ax.semilogy(grid, ber_awgn(bps, grid), "k--", label=f"uncoded {modulation} BER")
        if bps <= 2 and 0 < code.k < code.e:
            ax.semilogy(grid, normal_approximation_bler(code.e, code.k, grid), "k:",
                        label=f"normal approx. BLER (n={code.e}, k={code.k})")
    elif bps <= 2:
        ax.semilogy(grid, ber_bpsk_rayleigh(grid), "k--", label=f"uncoded {modulation} BER")
    ax.set_xlabel("Eb/N0 per information bit (dB)")
    ax.set_ylabel("error rate")
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    floor = min((min(p.ber, p.bler) for p in points if min(p.ber, p.bler) > 0), default=1e-6)
    ax.set_ylim(max(floor / 10, 1e-9), 1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    from genjscc.core.fec.decoders import make_decoder
    from genjscc.core.mapping import Constellation
    from genjscc.core.sim.ber import simulate_ber

    ebno = parse_ebno_list(args.ebno)
    options = parse_decoder_options(args.decoder_option)
    if args.model is not None:
        options["model"] = args.model
    bps = Constellation(args.modulation).bits_per_symbol
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenjsccError("--device cuda: no CUDA device is available here; use --device cpu")
    code = resolve_code(args.code, bps)
    if code.name.startswith("uncoded_n") and args.decoder != "none":
        raise GenjsccError(f"--code {args.code}: an uncoded link has no parity checks to decode "
                           "with; use --decoder none")
    if device.type != "cpu" and args.decoder not in ("ldpc-cpp", "none"):
        options.setdefault("device", device)
    from genjscc.serve.client import connect, parse_backend

    if parse_backend(getattr(args, "backend", "local")) is not None:
        options.pop("device", None)
        client = connect(args.backend)
        client.notice = lambda text: print(f"genjscc ber: {text}", file=sys.stderr, flush=True)
        decoder = client.decoder(args.decoder, code, num_iters=args.iters, **options)
        decoder.resolve()  # a dead server or a missing model: one line, before the sweep
    else:
        decoder = make_decoder(args.decoder, code, num_iters=args.iters, **options)
    points = simulate_ber(
        code, decoder, ebno, modulation=args.modulation, channel=args.channel,
        min_errors=args.min_errors, max_words=args.max_words, batch_size=args.batch,
        seed=args.seed, device=device, progress=False if args.no_progress else None,
        fading_block_length=args.block_length,
    )
    iters = "" if args.decoder in ("none", "ecct") else f", {args.iters} iterations"
    title = (f"{code.name} (n={code.n}, k={code.k}, e={code.e}), decoder {args.decoder}{iters}, "
             f"{args.modulation} over {args.channel}")
    if args.json:
        rows = [{**p.to_dict(), "code": code.name, "n": code.n, "k": code.k, "e": code.e,
                 "decoder": args.decoder, "iters": args.iters, "modulation": args.modulation,
                 "channel": args.channel, "seed": args.seed} for p in points]
        print(json.dumps(rows, indent=2))
    else:
        print(_table(points, title))
        if len(points) < len(ebno):
            print(f"(stopped after {points[-1].ebno_db:g} dB: no error in "
                  f"{points[-1].words} words)")
    if args.plot:
        write_plot(args.plot, points, code, title, args.modulation, args.channel)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
