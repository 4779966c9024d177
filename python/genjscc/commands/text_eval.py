"""Text over the air at equal energy per word: LM-SSCC chains beside the DeepSC-class JSCC.

Every sentence of --sentences (one per line; empty lines skipped) is sent by every scheme at
every energy per word Ew/N0 (dB): the total energy a scheme spends on a sentence divided by
its word count and N0. A scheme using n complex channel uses for a sentence of w words runs
its channel at Es/N0 = Ew/N0 * w / n (docs/text.md). Channel: AWGN, or Rayleigh block fading
with one coefficient per sentence (perfect CSI, equalized).

Schemes: deepsc (the shipped text JSCC, --model) and the LM-SSCC chains: lm-sscc (lm-small +
5G NR LDPC rate 1/2 sized to the sentence, QPSK, BP-50), lm-sscc-r13 (the same at rate 1/3),
lm-sscc-ecct / lm-sscc-bp (LDPC(49,24), BPSK, ECCT or BP-50), lm-sscc-polar-ecct /
lm-sscc-polar-bp (Polar(64,32)). A sentence whose check fails is lost: received as "".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genjscc.commands._args import parse_number_list
from genjscc.commands._io import ProgressBar
from genjscc.errors import GenjsccError

EPILOG = """\
examples:
  genjscc text-eval --sentences dev.txt --limit 100 --schemes lm-sscc,deepsc --ew-n0 0:15:3
  genjscc text-eval --sentences dev.txt --schemes lm-sscc-ecct,lm-sscc-bp --ew-n0 6,9,12 \\
      --channel rayleigh --json > rows.json
  genjscc text-eval --sentences dev.txt --ew-n0 0:18:3 --plot curves.png --x esn0
  genjscc text-eval --sentences dev.txt --schemes deepsc --esn0 6,12 --limit 500
                                   every sentence at Es/N0 6 and 12 dB per channel use

--json prints a list of objects: scheme, channel, ew_n0_db, esn0_db (Es/N0 per channel use,
over all sentences), channel_uses_per_word, unified_snr_db (per information bit, float32 JSCC
values counted as 32 bits), bleu1, bleu4, exact, cer, lost, sentences, seconds.
"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--sentences", required=True, type=Path, metavar="FILE",
                        help="UTF-8 text, one sentence per line")
    parser.add_argument("--limit", type=int, default=0, help="first N sentences (default: all)")
    parser.add_argument("--schemes", default="lm-sscc,lm-sscc-ecct,deepsc",
                        help="comma-separated (default: %(default)s)")
    parser.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh"),
                        help="default: awgn")
    energy = parser.add_mutually_exclusive_group(required=True)
    energy.add_argument("--ew-n0", metavar="LIST",
                        help="energies per word in dB: '0,6,12' or START:STOP:STEP")
    energy.add_argument("--esn0", metavar="LIST",
                        help="instead: Es/N0 per channel use in dB, the same for every scheme "
                        "(the equal-SNR view; each row reports the Ew/N0 it cost)")
    parser.add_argument("--model", default="text-jscc-small",
                        help="text JSCC zoo name or .safetensors path (default: %(default)s)")
    parser.add_argument("--lm", default="small", help="LM of the LM-SSCC chains (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write BLEU-4 and exact recovery against --x here")
    parser.add_argument("--x", default="ew", choices=("ew", "esn0", "unified"),
                        help="plot axis: ew (equal energy per word), esn0 (per channel use), "
                        "unified (per information bit) (default: ew)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no line per finished row on stderr")


def read_sentences(path: Path, limit: int = 0) -> list[str]:
    """Non-empty lines of ``path`` (stripped), the first ``limit`` if > 0."""
    if not path.is_file():
        raise GenjsccError(f"--sentences {path}: no such file")
    try:
        lines = [s.strip() for s in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise GenjsccError(f"--sentences {path}: not UTF-8 text ({err})") from None
    lines = [s for s in lines if s]
    if limit > 0:
        lines = lines[:limit]
    if not lines:
        raise GenjsccError(f"--sentences {path}: no non-empty lines")
    return lines


def run(args: argparse.Namespace) -> int:
    import torch

    from genjscc.core.text.evaluate import evaluate_schemes, make_scheme, plot_rows

    torch.set_num_threads(max(1, args.threads))
    per = "word" if args.ew_n0 is not None else "channel-use"
    energies = parse_number_list(args.ew_n0 if per == "word" else args.esn0,
                                 "--ew-n0" if per == "word" else "--esn0", max_points=100)
    texts = read_sentences(args.sentences, args.limit)
    names = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if not names:
        raise GenjsccError("--schemes: name at least one scheme")
    bar = ProgressBar(f"LM coding ({args.lm})", "sym", disable=args.quiet)
    source = None
    if any(n != "deepsc" for n in names):
        from genjscc.core.text.sscc import LMSentenceSource

        source = LMSentenceSource(args.lm, progress=bar)
    try:
        schemes = [make_scheme(n, source, args.model) for n in names]
    except ValueError as err:
        raise GenjsccError(f"--schemes: {err}") from None
    try:
        rows = evaluate_schemes(texts, schemes, args.channel, energies, args.seed, per,
                                on_row=None if args.quiet else _say_row(bar))
    finally:
        bar.close()
    if args.plot:
        plot_rows(rows, args.plot, args.x)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows))
        if args.plot:
            print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _say_row(bar: ProgressBar):
    """A line on stderr per finished row (the LM bar, if any, closed first)."""
    def say(row: dict) -> None:
        bar.close()
        print(f"text-eval: {row['scheme']} {row['channel']} Ew/N0 {row['ew_n0_db']:g} dB: "
              f"BLEU-4 {row['bleu4']:.3f}, exact {row['exact']:.3f}, {row['lost']} lost "
              f"({row['seconds']:.1f} s)", file=sys.stderr, flush=True)
    return say


def table(rows: list[dict]) -> str:
    lines = [f"{'scheme':<20} {'chan':<8} {'Ew/N0':>6} {'Es/N0':>7} {'cu/w':>6} {'BLEU1':>6} "
             f"{'BLEU4':>6} {'exact':>6} {'CER':>6} {'lost':>5}"]
    for r in rows:
        lines.append(f"{r['scheme']:<20} {r['channel']:<8} {r['ew_n0_db']:>6g} "
                     f"{r['esn0_db']:>7.2f} {r['channel_uses_per_word']:>6.2f} "
                     f"{r['bleu1']:>6.3f} {r['bleu4']:>6.3f} {r['exact']:>6.3f} "
                     f"{r['cer']:>6.3f} {r['lost']:>5}")
    return "\n".join(lines)
