"""Demo part ``amc``: the cliff and leveling effects of link adaptation with a wrong SNR estimate.

The transmitter picks the TS 38.214 MCS (table 1) from an SNR *estimate* with the shipped
thresholds (:func:`genjscc.core.amc.select_mcs`); the channel then has another *true* SNR.
:func:`genjscc.core.amc.amc_cliff_curves` measures, by Monte Carlo over AWGN with the shipped
allocation (512 resource elements) and decoder, the BLER and goodput ``SE x (1 - BLER)`` of
that fixed MCS at each true SNR, beside the genie that picks the MCS from the true SNR.
Below the estimate the fixed MCS falls off a *cliff*; above it its goodput *levels* off at its
spectral efficiency while the genie climbs the staircase. SNR is Es/N0 per resource element.

results.json: ``"amc_cliff"``, :meth:`genjscc.core.amc.AmcCliffData.to_dict`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

# True SNR = estimate + these offsets (dB): dense on the cliff side, where BLER moves fastest.
TRUE_OFFSETS_DB = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0)


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--cliff-estimate", type=float, default=12.0, metavar="DB",
                       help="SNR estimate (Es/N0, dB) the MCS is chosen from (default 12)")
    group.add_argument("--cliff-words", type=int, default=200,
                       help="transport blocks per (MCS, true SNR) point at most (default 200)")


def check_arguments(args: argparse.Namespace) -> None:
    if not math.isfinite(args.cliff_estimate) or not -10.0 <= args.cliff_estimate <= 30.0:
        raise ValueError("--cliff-estimate must be an SNR between -10 and 30 dB")
    if args.cliff_words < 10:
        raise ValueError("--cliff-words must be at least 10")


def run(args: argparse.Namespace, out: Path) -> tuple[list, dict]:
    from genjscc.core.amc import amc_cliff_curves, plot_amc_cliff

    true_snr = [args.cliff_estimate + d for d in TRUE_OFFSETS_DB]
    data = amc_cliff_curves(args.cliff_estimate, true_snr, table=1, num_words=args.cliff_words,
                            min_errors=max(10, args.cliff_words // 4), seed=args.seed,
                            progress=None, num_threads=1)
    plot_amc_cliff(data, out / "amc_cliff.png")
    return [_section(data)], {"amc_cliff": data.to_dict()}


def _at(data, offset: float) -> int:
    return min(range(len(data.true_snr_db)),
               key=lambda i: abs(data.true_snr_db[i] - data.estimated_snr_db - offset))


def _section(data):
    from genjscc.demo import report

    f = data.fixed_mcs
    low, high = _at(data, -1.0), _at(data, 3.0)
    est = data.estimated_snr_db
    text = (
        f"The SNR estimate of {est:g} dB selects MCS {f.index} of TS 38.214 table 1 "
        f"({f.modulation}, R = {f.code_rate_x1024:g}/1024, SE {f.spectral_efficiency:.2f} "
        f"bit/s/Hz, measured threshold {data.fixed_threshold_db:.2f} dB for BLER "
        f"{data.target_bler:g}); that MCS is then used at every true SNR (red), beside the "
        f"genie that chooses from the true SNR (blue). 5G NR LDPC on {data.num_re} resource "
        f"elements, {data.decoder} x{data.num_iters}, AWGN, at most {data.num_words} "
        f"transport blocks per point ({data.seconds:.0f} s).\n\n"
        f"* **Cliff** (true SNR below the estimate): at {data.true_snr_db[low]:g} dB the fixed "
        f"MCS has BLER {data.fixed_bler[low]:.2f} and goodput "
        f"{data.fixed_goodput[low]:.2f} bit/s/Hz, where the genie (MCS {data.genie_mcs[low]}) "
        f"carries {data.genie_goodput[low]:.2f}: one dB of optimism in the estimate costs "
        f"{_loss(data.fixed_goodput[low], data.genie_goodput[low])} of the goodput.\n"
        f"* **Leveling** (true SNR above the estimate): at {data.true_snr_db[high]:g} dB the "
        f"fixed MCS has BLER {data.fixed_bler[high]:.2f} and its goodput stays at "
        f"{data.fixed_goodput[high]:.2f} bit/s/Hz (its SE), while the genie (MCS "
        f"{data.genie_mcs[high]}) reaches {data.genie_goodput[high]:.2f}: the extra SNR is "
        "wasted, but nothing is lost.\n\n"
        "The asymmetry is why a link backs off (`select_mcs(..., margin_db)`, the "
        "`mcs_selector` block's margin) by about the error of its SNR estimate. "
        "Reproduce with `genjscc amc cliff --estimate "
        f"{est:g} --true {','.join(f'{s:g}' for s in data.true_snr_db)} --plot cliff.png`; "
        "see docs/amc.md.\n\n" + _table(data))
    return report.Section(title="Link adaptation: the cliff and leveling effects", text=text,
                          images=["amc_cliff.png"])


def _loss(fixed: float, genie: float) -> str:
    return f"{100 * (1 - fixed / genie):.0f} %" if genie > 0 else "nothing"


def _table(data) -> str:
    lines = ["| true SNR (dB) | fixed MCS BLER | fixed goodput | genie MCS | genie BLER | "
             "genie goodput | capacity |", "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(data.true_snr_db):
        lines.append(f"| {s:g} | {data.fixed_bler[i]:.3f} | {data.fixed_goodput[i]:.3f} | "
                     f"{data.genie_mcs[i]} | {data.genie_bler[i]:.3f} | "
                     f"{data.genie_goodput[i]:.3f} | {data.capacity[i]:.3f} |")
    return "\n".join(lines)
