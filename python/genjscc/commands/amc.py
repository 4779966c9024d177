"""Link adaptation with the TS 38.214 MCS tables: thresholds, MCS choice, measurement.

SNR is Es/N0 per complex symbol (resource element) in dB (docs/conventions.md). A threshold is
the SNR at which an MCS's block error rate over AWGN falls to the target (10 %), measured for
the shipped allocation size and decoder (see `genjscc amc table` and docs/amc.md).

actions:
  table     print an MCS table with its shipped SNR thresholds
  select    the MCS for an SNR estimate: the most efficient one whose threshold <= SNR - margin
  measure   measure the thresholds by Monte Carlo (writes the shipped CSV format)
  cliff     BLER and goodput of a fixed MCS against the true SNR (cliff and leveling)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys

from genjscc.errors import GenjsccError

EPILOG = """\
examples:
  genjscc amc table --table 2
  genjscc amc select --snr 12.3 --margin 1
  genjscc amc select --snr=-3 --table 2 --json
  genjscc amc measure --table 1 --num-re 512 --iters 20 --out thresholds_table1.csv
  genjscc amc cliff --estimate 10 --true 6:15:1 --plot cliff.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="amc_action", metavar="ACTION")

    p = sub.add_parser("table", help="print an MCS table with its SNR thresholds")
    _common(p)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    p = sub.add_parser("select", help="choose the MCS for an SNR estimate")
    p.add_argument("--snr", type=float, required=True, metavar="DB",
                   help="estimated Es/N0 per complex symbol in dB (negative: --snr=-3)")
    _common(p)
    p.add_argument("--margin", type=float, default=0.0, metavar="DB",
                   help="back-off subtracted from the estimate (default: 0)")
    p.add_argument("--json", action="store_true", help="print the choice as JSON")

    p = sub.add_parser("measure", help="measure the SNR thresholds by Monte Carlo")
    p.add_argument("--table", type=int, default=1, help="MCS index table, 1 or 2 (default: 1)")
    p.add_argument("--num-re", type=int, default=512,
                   help="resource elements per transport block (default: 512)")
    p.add_argument("--decoder", default="bp-layered", help="decoder (default: bp-layered)")
    p.add_argument("--iters", type=int, default=20, help="decoder iterations (default: 20)")
    p.add_argument("--target-bler", type=float, default=0.1, help="target BLER (default: 0.1)")
    p.add_argument("--step", type=float, default=0.25,
                   help="SNR grid step in dB walked per MCS (default: 0.25)")
    p.add_argument("--min-errors", type=int, default=100,
                   help="stop a point after this many block errors (default: 100)")
    p.add_argument("--max-words", type=int, default=2000,
                   help="stop a point after this many words (default: 2000)")
    p.add_argument("--mcs", default=None, metavar="LIST",
                   help="only these MCS indices, e.g. 0,5,10 (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default: 1, fastest for these decoders on a busy CPU)")
    p.add_argument("--out", default=None, metavar="CSV", help="write the thresholds CSV here")
    p.add_argument("--curves-out", default=None, metavar="CSV",
                   help="write every simulated BLER point here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("cliff", help="cliff and leveling of a fixed MCS against the true SNR")
    p.add_argument("--estimate", type=float, required=True, metavar="DB",
                   help="SNR estimate (dB) the MCS is chosen from")
    p.add_argument("--true", dest="true_snr", required=True, metavar="LIST",
                   help="true SNRs in dB: '6,8,10' or START:STOP:STEP (STOP included)")
    _common(p)
    p.add_argument("--margin", type=float, default=0.0, metavar="DB", help="back-off (dB)")
    p.add_argument("--words", type=int, default=200, help="words per point (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="write the plot here")
    p.add_argument("--json", action="store_true", help="print the data as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", type=int, default=1, help="MCS index table, 1 or 2 (default: 1)")
    p.add_argument("--target-bler", type=float, default=0.1,
                   help="target BLER of the thresholds (default: 0.1, as shipped)")


def run(args: argparse.Namespace) -> int:
    actions = {"table": _table, "select": _select, "measure": _measure, "cliff": _cliff}
    if args.amc_action is None:
        raise GenjsccError("choose an action: genjscc amc {table,select,measure,cliff} ...")
    return actions[args.amc_action](args)


def _table(args: argparse.Namespace) -> int:
    from genjscc.core.amc import load_thresholds, mcs_table, snr_thresholds, transport_config

    shipped = load_thresholds(args.table)
    thresholds = snr_thresholds(args.table, args.target_bler)
    rows = []
    for e in mcs_table(args.table):
        cfg = transport_config(e, shipped.num_re)
        rows.append({**e.to_dict(), "tbs": cfg.tbs, "base_graph": cfg.base_graph,
                     "snr_db": thresholds.get(e.index, math.nan)})
    if args.json:
        print(json.dumps([{k: (None if isinstance(v, float) and math.isnan(v) else v)
                           for k, v in r.items()} for r in rows], indent=1))
        return 0
    meta = shipped.metadata
    print(f"MCS table {args.table} (TS 38.214 Table 5.1.3.1-{args.table}); SNR = Es/N0 per "
          f"complex symbol at BLER {args.target_bler:g}, AWGN, {shipped.num_re} RE, "
          f"{shipped.decoder} x{shipped.num_iters}")
    print(f"measured by: {meta.get('command', '?')} ({meta.get('date', '?')})")
    print(f"{'MCS':>3} {'mod':>6} {'Qm':>2} {'R*1024':>7} {'SE':>7} {'TBS':>5} {'BG':>2} "
          f"{'SNR dB':>7}")
    for r in rows:
        print(f"{r['mcs_index']:>3} {r['modulation']:>6} {r['modulation_order']:>2} "
              f"{r['code_rate_x1024']:>7g} {r['spectral_efficiency']:>7.4f} {r['tbs']:>5} "
              f"{r['base_graph']:>2} {r['snr_db']:>7.2f}")
    return 0


def _select(args: argparse.Namespace) -> int:
    from genjscc.core.amc import select_mcs, snr_thresholds

    entry = select_mcs(args.snr, args.table, args.target_bler, args.margin)
    threshold = snr_thresholds(args.table, args.target_bler)[entry.index]
    if args.json:
        print(json.dumps({**entry.to_dict(), "snr_db": args.snr, "margin_db": args.margin,
                          "threshold_db": threshold, "target_bler": args.target_bler}))
        return 0
    below = threshold > args.snr - args.margin
    print(f"MCS {entry.index} (table {args.table}): {entry.modulation}, "
          f"Q_m {entry.modulation_order}, "
          f"R {entry.code_rate_x1024:g}/1024 = {entry.code_rate:.4f}, "
          f"SE {entry.spectral_efficiency:.4f} bit/s/Hz")
    print(f"threshold {threshold:.2f} dB {'>' if below else '<='} SNR - margin = "
          f"{args.snr - args.margin:.2f} dB"
          + (" (below every threshold: the lowest MCS)" if below else ""))
    return 0


def _machine(threads: int) -> str:
    import torch

    from genjscc.machine import cpu_name

    return (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with "
            f"{threads} thread{'s' if threads != 1 else ''}, Python {platform.python_version()}")


def _measure(args: argparse.Namespace) -> int:
    from genjscc import __version__
    from genjscc.core.amc import measure_thresholds, write_curves, write_thresholds

    mcs = None
    if args.mcs:
        try:
            mcs = [int(v) for v in args.mcs.split(",")]
        except ValueError:
            raise GenjsccError(f"--mcs {args.mcs!r}: give comma-separated integers") from None
    for path in (args.out, args.curves_out):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise GenjsccError(f"cannot write {path}: its folder does not exist")
    m = measure_thresholds(
        table=args.table, num_re=args.num_re, decoder=args.decoder, num_iters=args.iters,
        target_bler=args.target_bler, snr_step_db=args.step, min_errors=args.min_errors,
        max_words=args.max_words, mcs=mcs, seed=args.seed, device=args.device,
        progress=False if args.no_progress else None, num_threads=args.threads,
    )
    command = m.command() + (f" --mcs {args.mcs}" if args.mcs else "")
    command += f" --device {args.device}" if args.device != "cpu" else ""
    command += f" --threads {args.threads}" if args.threads != 1 else ""
    command += f" --out {args.out}" if args.out else ""
    command += f" --curves-out {args.curves_out}" if args.curves_out else ""
    meta = {"command": command, "genjscc": __version__, "machine": _machine(args.threads),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    if args.out:
        write_thresholds(m, args.out, meta)
    if args.curves_out:
        write_curves(m, args.curves_out, meta)
    print(f"{'MCS':>3} {'mod':>6} {'R*1024':>7} {'SE':>7} {'TBS':>5} {'SNR dB':>7} "
          f"{'Eb/N0':>6} {'points':>6} {'s':>5}")
    for r in m.results:
        e = r.entry
        print(f"{e.index:>3} {e.modulation:>6} {e.code_rate_x1024:>7g} "
              f"{e.spectral_efficiency:>7.4f} {r.config.tbs:>5} {r.snr_db:>7.2f} "
              f"{r.ebno_db:>6.2f} {len(r.points):>6} {r.seconds:>5.1f}")
    print(f"total {m.seconds:.0f} s", file=sys.stderr)
    return 0


def _cliff(args: argparse.Namespace) -> int:
    from genjscc.commands._args import parse_number_list
    from genjscc.core.amc import amc_cliff_curves, plot_amc_cliff

    snrs = parse_number_list(args.true_snr, "--true")
    data = amc_cliff_curves(args.estimate, snrs, table=args.table,
                            target_bler=args.target_bler, margin_db=args.margin,
                            num_words=args.words, seed=args.seed,
                            progress=False if args.no_progress else None)
    if args.plot:
        plot_amc_cliff(data, args.plot)
    if args.json:
        print(json.dumps(data.to_dict(), indent=1))
        return 0
    f = data.fixed_mcs
    print(f"estimate {data.estimated_snr_db:g} dB -> MCS {f.index} ({f.modulation}, "
          f"SE {f.spectral_efficiency:.4f}, threshold {data.fixed_threshold_db:.2f} dB)")
    print(f"{'true dB':>7} {'BLER':>6} {'goodput':>7} | {'genie':>5} {'BLER':>6} {'goodput':>7}"
          f" | {'capacity':>8}")
    for i, s in enumerate(data.true_snr_db):
        print(f"{s:>7.2f} {data.fixed_bler[i]:>6.3f} {data.fixed_goodput[i]:>7.3f} | "
              f"{data.genie_mcs[i]:>5} {data.genie_bler[i]:>6.3f} {data.genie_goodput[i]:>7.3f}"
              f" | {data.capacity[i]:>8.3f}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
