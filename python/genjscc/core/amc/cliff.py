"""The cliff and leveling effects of link adaptation with a wrong SNR estimate.

A transmitter picks the MCS from an *estimated* SNR (:func:`~genjscc.core.amc.select_mcs`) and
the channel then delivers the *true* SNR:

* **cliff**: true SNR below the estimate. The MCS is too aggressive, its BLER climbs the
  waterfall towards 1 within a dB or two and the goodput ``SE x (1 - BLER)`` collapses.
* **leveling**: true SNR above the estimate. The BLER falls to zero but the goodput stays flat
  at the MCS's spectral efficiency: the extra SNR is wasted, where the genie (MCS chosen from
  the true SNR) climbs the staircase towards capacity.

:func:`amc_cliff_curves` measures both by Monte Carlo for one estimate and a list of true
SNRs; :func:`plot_amc_cliff` draws them. SNR is Es/N0 per complex symbol in dB.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genjscc.core.amc.tables import MCSEntry, check_table, mcs_entry, transport_config
from genjscc.core.amc.thresholds import (
    DEFAULT_TARGET_BLER,
    _check_finite,
    load_thresholds,
    select_mcs,
    simulate_bler,
    snr_thresholds,
)
from genjscc.core.channel.snr import db_to_linear
from genjscc.core.threads import torch_threads

__all__ = ["AmcCliffData", "amc_cliff_curves", "plot_amc_cliff"]


@dataclass(frozen=True)
class AmcCliffData:
    """Result of :func:`amc_cliff_curves` (all SNRs are Es/N0 per complex symbol, dB).

    Attributes:
        estimated_snr_db: the estimate the fixed MCS was chosen from.
        fixed_mcs: that MCS; ``fixed_threshold_db`` its SNR threshold.
        true_snr_db: the true SNRs simulated.
        fixed_bler, fixed_goodput: BLER and goodput (bit/s/Hz, ``SE x (1 - BLER)``) of the
            fixed MCS at each true SNR.
        genie_mcs: I_MCS chosen from each true SNR (same target and margin);
            ``genie_bler``, ``genie_goodput`` its BLER and goodput.
        capacity: AWGN capacity ``log2(1 + SNR)`` at each true SNR (bit/s/Hz).
        table, target_bler, margin_db, num_re, decoder, num_iters, num_words: settings.
        seconds: wall time.
    """

    estimated_snr_db: float
    fixed_mcs: MCSEntry
    fixed_threshold_db: float
    true_snr_db: tuple[float, ...]
    fixed_bler: tuple[float, ...]
    fixed_goodput: tuple[float, ...]
    genie_mcs: tuple[int, ...]
    genie_bler: tuple[float, ...]
    genie_goodput: tuple[float, ...]
    capacity: tuple[float, ...]
    table: int
    target_bler: float
    margin_db: float
    num_re: int
    decoder: str
    num_iters: int
    num_words: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the fixed MCS as a nested dict)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["fixed_mcs"] = self.fixed_mcs.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _settings(table: int, num_re: int | None, decoder: str | None,
              num_iters: int | None) -> tuple[int, str, int]:
    """Allocation and decoder of the shipped thresholds unless given (they go together)."""
    meta = load_thresholds(table)
    return (meta.num_re if num_re is None else num_re,
            meta.decoder if decoder is None else decoder,
            meta.num_iters if num_iters is None else num_iters)


def amc_cliff_curves(
    estimated_snr_db: float,
    true_snr_db: Sequence[float],
    table: int = 1,
    target_bler: float = DEFAULT_TARGET_BLER,
    margin_db: float = 0.0,
    num_re: int | None = None,
    decoder: str | None = None,
    num_iters: int | None = None,
    num_words: int = 200,
    min_errors: int = 50,
    seed: int = 0,
    device: str = "cpu",
    progress: bool | None = None,
    num_threads: int | None = 1,
) -> AmcCliffData:
    """BLER and goodput of the MCS chosen from ``estimated_snr_db`` at each true SNR, beside
    the genie MCS chosen from the true SNR.

    Args:
        estimated_snr_db: SNR estimate (Es/N0, dB) the transmitter adapts to.
        true_snr_db: SNRs the channel actually has (a few to ~10 points).
        table: MCS index table, 1 or 2.
        target_bler, margin_db: passed to :func:`~genjscc.core.amc.select_mcs` for both
            choices.
        num_re, decoder, num_iters: allocation and decoder; default: those of the shipped
            thresholds (so that the thresholds hold).
        num_words: words per (MCS, SNR) point at most; with ``min_errors`` block errors a point
            stops early (a point near BLER 1 costs ``min_errors`` words).
        seed: base seed (each point has its own derived seed).
        device: where the link runs.
        progress: a tqdm bar on stderr (None: only on a terminal).
        num_threads: torch intra-op threads during the run, restored after (None: leave).

    Returns:
        :class:`AmcCliffData`. About 10 points with the defaults take 10 to 30 s on one CPU
        core: each point is at most ``2 x num_words`` words, fewer when the genie and the
        fixed MCS coincide.
    """
    from tqdm.auto import tqdm

    from genjscc.core.fec.decoders import make_decoder

    table = check_table(table)
    estimate = _check_finite(estimated_snr_db, "estimated_snr_db")
    if isinstance(true_snr_db, int | float):
        true_snr_db = [true_snr_db]
    snrs = tuple(_check_finite(s, "true_snr_db") for s in true_snr_db)
    if not snrs:
        raise ValueError("true_snr_db must hold at least one SNR (dB)")
    for value, name in ((num_words, "num_words"), (min_errors, "min_errors")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    num_re, decoder, num_iters = _settings(table, num_re, decoder, num_iters)
    thresholds = snr_thresholds(table, target_bler)
    fixed = select_mcs(estimate, table, target_bler, margin_db)
    genie = [select_mcs(s, table, target_bler, margin_db).index for s in snrs]

    links: dict[int, tuple[Any, Any]] = {}
    cache: dict[tuple[int, int], float] = {}
    start = time.perf_counter()
    disable = (not progress) if progress is not None else not sys.stderr.isatty()

    def bler(index: int, point: int) -> float:
        """BLER of MCS ``index`` at true SNR number ``point`` (each pair simulated once)."""
        if (index, point) not in cache:
            if index not in links:
                cfg = transport_config(mcs_entry(index, table), num_re)
                links[index] = (cfg, make_decoder(decoder, cfg.code, num_iters=num_iters))
            cfg, dec = links[index]
            point_seed = seed * 1_000_003 + index * 10_007 + point
            cache[index, point] = simulate_bler(cfg, dec, snrs[point], min_errors, num_words,
                                                point_seed, device=device).bler
        return cache[index, point]

    fixed_bler, genie_bler = [], []
    with torch_threads(num_threads), tqdm(total=len(snrs), desc="AMC cliff", unit="snr",
                                          file=sys.stderr, disable=disable,
                                          dynamic_ncols=True) as bar:
        for i, g in enumerate(genie):
            fixed_bler.append(bler(fixed.index, i))
            genie_bler.append(bler(g, i))
            bar.update(1)
    se = {i: mcs_entry(i, table).spectral_efficiency for i in {fixed.index, *genie}}
    return AmcCliffData(
        estimated_snr_db=estimate,
        fixed_mcs=fixed,
        fixed_threshold_db=thresholds[fixed.index],
        true_snr_db=snrs,
        fixed_bler=tuple(fixed_bler),
        fixed_goodput=tuple(se[fixed.index] * (1 - b) for b in fixed_bler),
        genie_mcs=tuple(genie),
        genie_bler=tuple(genie_bler),
        genie_goodput=tuple(se[g] * (1 - b) for g, b in zip(genie, genie_bler, strict=True)),
        capacity=tuple(math.log2(1 + float(db_to_linear(s))) for s in snrs),
        table=table,
        target_bler=float(target_bler),
        margin_db=float(margin_db),
        num_re=num_re,
        decoder=decoder,
        num_iters=num_iters,
        num_words=num_words,
        seconds=time.perf_counter() - start,
    )


def plot_amc_cliff(data: AmcCliffData, path: str | os.PathLike) -> Path:
    """Draw BLER (top) and goodput (bottom) against the true SNR to a PNG; returns the path.

    Zero-error BLER points are drawn as open markers at ``0.5 / num_words``; the estimate is
    a vertical line and the region left of it (the cliff) is shaded.
    """
    if not isinstance(data, AmcCliffData):
        raise TypeError(f"data must be an AmcCliffData, got {type(data).__name__}")
    from genjscc.core.plotting import pyplot

    plt = pyplot()

    path = Path(path)
    x, est, f = data.true_snr_db, data.estimated_snr_db, data.fixed_mcs
    floor = 0.5 / data.num_words
    fig, (ax_b, ax_g) = plt.subplots(2, 1, figsize=(7.5, 7.5), sharex=True)
    label_fixed = (f"MCS {f.index} fixed from the estimate ({f.modulation.upper()}, "
                   f"R = {f.code_rate_x1024:g}/1024)")
    for blers, style, color, label in ((data.fixed_bler, "o-", "C3", label_fixed),
                                       (data.genie_bler, "s--", "C0",
                                        "genie: MCS from the true SNR")):
        ax_b.semilogy(x, [max(b, floor) for b in blers], style, color=color, label=label)
        zero = [(xi, floor) for xi, b in zip(x, blers, strict=True) if b == 0]
        if zero:  # no error seen: an open marker at half an error
            ax_b.plot(*zip(*zero, strict=True), style[0], color=color, mfc="white")
    ax_b.plot([], [], "o", color="grey", mfc="white",
              label=f"no block error in {data.num_words} words (drawn at 0.5/words)")
    ax_b.axhline(data.target_bler, color="grey", lw=0.8, ls=":", label="target BLER")
    ax_b.set_ylabel("BLER")
    ax_b.set_ylim(floor / 2, 1.5)
    ax_g.plot(x, data.fixed_goodput, "o-", color="C3", label=label_fixed)
    ax_g.plot(x, data.genie_goodput, "s--", color="C0", label="genie: MCS from the true SNR")
    for xi, yi, g in zip(x, data.genie_goodput, data.genie_mcs, strict=True):
        ax_g.annotate(str(g), (xi, yi), textcoords="offset points", xytext=(0, 6), fontsize=7,
                      ha="center", color="C0")
    ax_g.plot(x, data.capacity, ":", color="grey", label="AWGN capacity log2(1+SNR)")
    ax_g.set_ylabel("goodput SE x (1 - BLER) (bit/s/Hz)")
    ax_g.set_xlabel("true SNR, Es/N0 per complex symbol (dB)")
    for ax in (ax_b, ax_g):
        ax.axvline(est, color="k", lw=1.0, ls="--")
        ax.axvspan(min(min(x), est), est, color="C3", alpha=0.07, lw=0)
        ax.grid(True, which="both", alpha=0.3)
    ax_g.text(est, ax_g.get_ylim()[1], " estimate ", ha="right", va="top", fontsize=8)
    ax_g.text(0.02, 0.97, "cliff: true < estimate", transform=ax_g.transAxes, va="top",
              fontsize=8, color="C3")
    ax_g.text(0.98, 0.03, "leveling: true > estimate", transform=ax_g.transAxes, ha="right",
              fontsize=8, color="C3")
    ax_b.legend(fontsize=8, loc="upper right")
    ax_g.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.08))
    fig.suptitle(f"AMC with an SNR estimate of {est:g} dB (MCS table {data.table}, "
                 f"{data.num_re} RE, {data.decoder} x{data.num_iters}, AWGN)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
