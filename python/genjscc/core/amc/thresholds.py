"""SNR thresholds of the MCS tables and the SNR -> MCS choice (link adaptation).

The threshold of an MCS is the SNR at which its block error rate falls to the target (10 % by
default) over AWGN, for the transport block of :func:`~genjscc.core.amc.tables.transport_config`
on a given number of resource elements, decoded by a given decoder. SNR is **Es/N0 per complex
symbol** in dB (``Es = 1``, docs/conventions.md), the quantity a receiver estimates per
resource element.

:func:`measure_thresholds` measures them with the Monte-Carlo engine
(:func:`genjscc.core.sim.ber.simulate_ber`): for each MCS it walks an SNR grid
(``snr_step_db`` apart) from a guess until two neighbouring points bracket the target BLER,
then interpolates ``ln BLER`` linearly in dB between them. Each walk also goes down to a point
with BLER >= 0.5, so that :func:`snr_thresholds` can interpolate any target between 0.5 and
the lowest measured BLER from the same points. The guess is the Shannon limit of
the MCS's spectral efficiency plus the gap measured for the previous MCS, so a walk takes 3 to
5 points; points far above the target BLER stop after ``min_errors`` block errors and cost
little.

The shipped results (``genjscc/data/amc/thresholds_table{1,2}.csv`` and the measured points in
``bler_curves_table{1,2}.csv``) were written by ``genjscc amc measure``; the command, decoder,
number of resource elements and machine are in each file's ``#`` header.
:func:`snr_thresholds` reads them, and :func:`select_mcs` picks, among the MCS whose threshold
is at most ``snr_db - margin_db``, the one with the highest spectral efficiency.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from genjscc.core.amc.tables import (
    MCSEntry,
    TransportConfig,
    check_table,
    mcs_entry,
    mcs_table,
    transport_config,
)
from genjscc.core.channel.snr import esno_to_ebno_db, linear_to_db
from genjscc.core.threads import torch_threads

__all__ = [
    "DEFAULT_TARGET_BLER",
    "CurvePoint",
    "MCSThreshold",
    "ThresholdMeasurement",
    "ThresholdTable",
    "interpolate_snr",
    "load_thresholds",
    "measure_thresholds",
    "select_mcs",
    "shannon_snr_db",
    "simulate_bler",
    "snr_thresholds",
    "write_curves",
    "write_thresholds",
]

DEFAULT_TARGET_BLER = 0.1
_MAX_WALK = 80  # grid points per MCS before a walk gives up (20 dB at the default step)
_COVER_BLER = 0.5  # each walk also measures a point at least this high (see _walk)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CurvePoint:
    """One Monte-Carlo BLER measurement: ``block_errors / words`` at ``snr_db`` (Es/N0, dB)."""

    snr_db: float
    bler: float
    words: int
    block_errors: int


@dataclass(frozen=True)
class MCSThreshold:
    """The measured threshold of one MCS.

    Attributes:
        entry: the MCS.
        config: its transport block and code (``tbs``, ``k``, ``e``, ``base_graph``, ``code``).
        snr_db: Es/N0 (dB) at the target BLER; NaN when the walk could not bracket it.
        points: every simulated point, sorted by SNR.
        seconds: wall time of the walk.
    """

    entry: MCSEntry
    config: TransportConfig
    snr_db: float
    points: tuple[CurvePoint, ...]
    seconds: float

    @property
    def ebno_db(self) -> float:
        """Eb/N0 (dB) at the threshold, per information bit of the code block (k / e)."""
        if not math.isfinite(self.snr_db):
            return math.nan
        qm, rate = self.entry.modulation_order, self.config.effective_code_rate
        return float(esno_to_ebno_db(self.snr_db, qm, rate))


@dataclass(frozen=True)
class ThresholdMeasurement:
    """What :func:`measure_thresholds` returns: its settings and one result per MCS."""

    table: int
    num_re: int
    decoder: str
    num_iters: int
    target_bler: float
    snr_step_db: float
    min_errors: int
    max_words: int
    seed: int
    results: tuple[MCSThreshold, ...]
    seconds: float

    def command(self) -> str:
        """The ``genjscc amc measure`` command line that repeats this measurement."""
        return (
            f"genjscc amc measure --table {self.table} --num-re {self.num_re} "
            f"--decoder {self.decoder} --iters {self.num_iters} "
            f"--target-bler {self.target_bler:g} --step {self.snr_step_db:g} "
            f"--min-errors {self.min_errors} --max-words {self.max_words} --seed {self.seed}"
        )

    def metadata(self) -> dict[str, str]:
        """The ``# key: value`` header of the CSV files."""
        return {
            "table": str(self.table),
            "target_bler": f"{self.target_bler:g}",
            "snr": "Es/N0 per complex symbol (dB), Es = 1, complex AWGN CN(0, N0)",
            "num_re": str(self.num_re),
            "decoder": self.decoder,
            "num_iters": str(self.num_iters),
            "channel": "awgn",
            "link": "TBS (TS 38.214 5.1.3.2) + TB CRC in one 5G NR LDPC code block, rv 0, "
            "Gray QAM, exact LLRs",
            "seconds": f"{self.seconds:.0f}",
        }


@dataclass(frozen=True)
class ThresholdTable:
    """A thresholds CSV as read by :func:`load_thresholds`.

    Attributes:
        snr_db: I_MCS -> Es/N0 threshold (dB) at ``target_bler``.
        target_bler: the BLER the thresholds are for.
        metadata: the ``# key: value`` header (command, num_re, decoder, num_iters, machine,
            date, ...).
        curves: I_MCS -> measured points (from the companion curves file, when present).
    """

    snr_db: dict[int, float]
    target_bler: float
    metadata: dict[str, str]
    curves: dict[int, tuple[CurvePoint, ...]] = field(default_factory=dict)

    @property
    def num_re(self) -> int:
        return int(self.metadata["num_re"])

    @property
    def decoder(self) -> str:
        return self.metadata["decoder"]

    @property
    def num_iters(self) -> int:
        return int(self.metadata["num_iters"])


# ----------------------------------------------------------------------------- helpers


def _check_finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_bler(target_bler: Any) -> float:
    target = _check_finite(target_bler, "target_bler")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target_bler must be in (0, 1), got {target_bler!r}")
    return target


def shannon_snr_db(spectral_efficiency: float) -> float:
    """SNR (dB) at which AWGN capacity ``log2(1 + SNR)`` equals ``spectral_efficiency``."""
    return float(linear_to_db(2.0 ** float(spectral_efficiency) - 1.0))


def interpolate_snr(points: Iterable[CurvePoint], target_bler: float) -> float:
    """SNR (dB) where a measured BLER curve crosses ``target_bler``; NaN if not bracketed.

    Takes the highest-SNR point with ``bler > target`` and the next point above it, and
    interpolates ``ln BLER`` linearly in dB. A point without errors counts as
    ``0.5 / words`` (half an error), which keeps the logarithm finite and errs to the safe,
    higher-SNR side only by a fraction of the grid step.
    """
    pts = sorted(points, key=lambda p: p.snr_db)
    above = [i for i, p in enumerate(pts) if p.bler > target_bler]
    if not above or above[-1] + 1 >= len(pts):
        return math.nan
    lo, hi = pts[above[-1]], pts[above[-1] + 1]
    b_lo = lo.bler
    b_hi = hi.bler if hi.block_errors > 0 else 0.5 / hi.words
    b_hi = min(b_hi, target_bler)  # the floor above can exceed the target for tiny word counts
    if b_lo <= b_hi:
        return hi.snr_db
    t = (math.log(b_lo) - math.log(target_bler)) / (math.log(b_lo) - math.log(b_hi))
    return lo.snr_db + t * (hi.snr_db - lo.snr_db)


# ----------------------------------------------------------------------------- Monte Carlo


def simulate_bler(
    config: TransportConfig,
    decoder: Any,
    snr_db: float,
    min_errors: int,
    max_words: int,
    seed: int,
    batch_size: int | None = None,
    device: str = "cpu",
) -> CurvePoint:
    """Monte-Carlo BLER of one transport configuration at Es/N0 = ``snr_db`` over AWGN.

    ``decoder`` is a callable from :func:`genjscc.core.fec.decoders.make_decoder` for
    ``config.code``. The Es/N0 -> Eb/N0 conversion of the engine uses the code block's own
    rate ``k / e`` (no padding: ``e`` is a multiple of Q_m).
    """
    from genjscc.core.sim.ber import simulate_ber

    qm = config.entry.modulation_order
    ebno = float(esno_to_ebno_db(snr_db, qm, config.effective_code_rate))
    batch = batch_size or min(max_words, 100)
    (point,) = simulate_ber(
        config.code, decoder, [ebno], modulation=config.entry.modulation, channel="awgn",
        min_errors=min_errors, max_words=max_words, batch_size=batch, seed=seed,
        device=device, progress=False,
    )
    if abs(point.esno_db - snr_db) > 1e-6:  # the engine must see the same Es/N0
        raise RuntimeError(f"Es/N0 mismatch: asked {snr_db} dB, simulated {point.esno_db} dB")
    return CurvePoint(float(snr_db), point.bler, point.words, point.block_errors)


def _grid(snr_grid_db: Sequence[float] | None, step: float, guess: float):
    """(snr of grid index i, start index, index bounds) for an explicit or a stepped grid."""
    if snr_grid_db is None:
        start = round(guess / step)
        return (lambda i: round(i * step, 9)), start, (start - _MAX_WALK, start + _MAX_WALK)
    grid = sorted(float(v) for v in snr_grid_db)
    start = min(range(len(grid)), key=lambda i: abs(grid[i] - guess))
    return (lambda i: grid[i]), start, (0, len(grid) - 1)


def _walk(simulate, target: float, snr_at, start: int, bounds: tuple[int, int]) -> dict:
    """Simulate grid points from ``start`` towards the target BLER until a neighbouring pair
    brackets it, then further down until a point reaches BLER :data:`_COVER_BLER` (cheap:
    such points stop after ``min_errors`` words), so that targets between the measured
    target and that BLER can be interpolated later. Stops at a grid bound. Returns
    {grid index: CurvePoint}."""
    points: dict[int, CurvePoint] = {}

    def point(i: int) -> CurvePoint:
        if i not in points:
            points[i] = simulate(i, snr_at(i))
        return points[i]

    i = start
    while bounds[0] <= i <= bounds[1] and len(points) < _MAX_WALK:
        if point(i).bler > target:
            if i + 1 in points and points[i + 1].bler <= target:
                break
            i += 1
        else:
            if i - 1 in points and points[i - 1].bler > target:
                break
            i -= 1
    i = min(points)
    while (points[i].bler < _COVER_BLER and i - 1 >= bounds[0] and len(points) < _MAX_WALK
           and points[i].bler > 0):
        i -= 1
        point(i)
    return points


def measure_thresholds(
    table: int = 1,
    num_re: int = 512,
    decoder: str = "bp-layered",
    num_iters: int = 20,
    target_bler: float = DEFAULT_TARGET_BLER,
    snr_step_db: float = 0.25,
    snr_grid_db: Sequence[float] | None = None,
    min_errors: int = 100,
    max_words: int = 2000,
    mcs: Sequence[int] | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool | None = None,
    batch_size: int | None = None,
    num_threads: int | None = 1,
) -> ThresholdMeasurement:
    """Measure the SNR threshold (Es/N0 at ``target_bler``) of every MCS of ``table``.

    Args:
        table: MCS index table, 1 or 2.
        num_re: resource elements per transport block (sets TBS, k and e).
        decoder: a :func:`~genjscc.core.fec.decoders.make_decoder` name.
        num_iters: decoder iterations.
        target_bler: the BLER the thresholds are for.
        snr_step_db: spacing of the SNR grid walked per MCS (grid points are multiples of it).
        snr_grid_db: an explicit SNR grid (dB) instead of the stepped one; an MCS whose
            crossing is not inside it gets NaN.
        min_errors, max_words: stopping rule of each point (see ``simulate_ber``).
        mcs: the MCS indices to measure (default: all of the table).
        seed: base seed; each (MCS, grid point) has its own derived seed.
        device: where the link and decoder run.
        progress: a tqdm bar on stderr (None: only on a terminal).
        batch_size: words per batch (default ``min(max_words, 100)``).
        num_threads: torch intra-op threads during the run, restored after (None: leave).

    Returns:
        A :class:`ThresholdMeasurement`; write it with :func:`write_thresholds`.
    """
    from tqdm.auto import tqdm

    from genjscc.core.fec.decoders import make_decoder

    table = check_table(table)
    target = _check_bler(target_bler)
    step = _check_finite(snr_step_db, "snr_step_db")
    if step <= 0:
        raise ValueError(f"snr_step_db must be > 0, got {snr_step_db!r}")
    if snr_grid_db is not None and len(snr_grid_db) < 2:
        raise ValueError("snr_grid_db needs at least two SNR values to bracket the target")
    entries = mcs_table(table) if mcs is None else tuple(mcs_entry(i, table) for i in mcs)
    configs = [transport_config(e, num_re) for e in entries]  # validates num_re up front
    gap_db = 2.0  # first guess of the gap to capacity; then the previous MCS's measured gap
    results = []
    start_all = time.perf_counter()
    disable = (not progress) if progress is not None else not sys.stderr.isatty()
    with torch_threads(num_threads), tqdm(total=len(entries), desc=f"MCS table {table}",
                                          unit="mcs", file=sys.stderr, disable=disable,
                                          dynamic_ncols=True) as bar:
        for entry, cfg in zip(entries, configs, strict=True):
            t0 = time.perf_counter()
            dec = make_decoder(decoder, cfg.code, num_iters=num_iters)
            # Start a little low: points above the target BLER stop early and cost little.
            guess = shannon_snr_db(entry.spectral_efficiency) + gap_db - 0.5
            snr_at, start, bounds = _grid(snr_grid_db, step, guess)

            def simulate(i: int, snr: float, entry=entry, cfg=cfg, dec=dec) -> CurvePoint:
                point_seed = seed * 1_000_003 + entry.index * 10_007 + (i % 10_000)
                p = simulate_bler(cfg, dec, snr, min_errors, max_words, point_seed,
                                  batch_size, device)
                bar.set_postfix(mcs=entry.index, snr=f"{snr:.2f}", bler=f"{p.bler:.3f}")
                return p

            points = _walk(simulate, target, snr_at, start, bounds)
            pts = tuple(sorted(points.values(), key=lambda p: p.snr_db))
            snr = interpolate_snr(pts, target)
            if math.isfinite(snr):
                gap_db = snr - shannon_snr_db(entry.spectral_efficiency)
            results.append(MCSThreshold(entry, cfg, snr, pts, time.perf_counter() - t0))
            bar.update(1)
    return ThresholdMeasurement(
        table=table, num_re=cfg.num_re, decoder=decoder, num_iters=num_iters, target_bler=target,
        snr_step_db=step, min_errors=min_errors, max_words=max_words, seed=seed,
        results=tuple(results), seconds=time.perf_counter() - start_all,
    )


# ----------------------------------------------------------------------------- CSV files


_THRESHOLD_COLUMNS = ("mcs_index", "modulation", "modulation_order", "code_rate_x1024",
                      "spectral_efficiency", "tbs", "k", "e", "base_graph", "snr_db", "ebno_db")
_CURVE_COLUMNS = ("mcs_index", "snr_db", "bler", "words", "block_errors")


def _header(title: str, meta: dict[str, str]) -> str:
    lines = [f"# {title}"] + [f"# {key}: {value}" for key, value in meta.items()]
    return "\n".join(lines) + "\n"


def write_thresholds(measurement: ThresholdMeasurement, path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> None:
    """Write the thresholds CSV: a ``#`` header (``metadata`` first, then the settings) and
    one row per MCS (``snr_db`` Es/N0 and ``ebno_db`` at the target BLER, NaN if unmeasured)."""
    meta = {**(metadata or {}), **measurement.metadata()}
    buf = io.StringIO()
    buf.write(_header(f"SNR thresholds of TS 38.214 MCS table {measurement.table} at BLER "
                      f"{measurement.target_bler:g}", meta))
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_THRESHOLD_COLUMNS)
    for r in measurement.results:
        c, e = r.config, r.entry
        writer.writerow([e.index, e.modulation, e.modulation_order, f"{e.code_rate_x1024:g}",
                         f"{e.spectral_efficiency:.4f}", c.tbs, c.k, c.e, c.base_graph,
                         f"{r.snr_db:.3f}", f"{r.ebno_db:.3f}"])
    Path(path).write_text(buf.getvalue())


def write_curves(measurement: ThresholdMeasurement, path: str | os.PathLike,
                 metadata: dict[str, str] | None = None) -> None:
    """Write every simulated point (``mcs_index, snr_db, bler, words, block_errors``)."""
    meta = {**(metadata or {}), **measurement.metadata()}
    buf = io.StringIO()
    buf.write(_header(f"Measured BLER points of TS 38.214 MCS table {measurement.table}", meta))
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CURVE_COLUMNS)
    for r in measurement.results:
        for p in r.points:
            writer.writerow([r.entry.index, f"{p.snr_db:.3f}", f"{p.bler:.6g}", p.words,
                             p.block_errors])
    Path(path).write_text(buf.getvalue())


def _read_commented_csv(text: str, where: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    meta: dict[str, str] = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                meta.setdefault(key.strip(), value.strip())
        elif line.strip():
            body.append(line)
    rows = list(csv.DictReader(body))
    if not rows:
        raise ValueError(f"{where}: no data rows")
    return meta, rows


def _read_curves(text: str, where: str) -> dict[int, tuple[CurvePoint, ...]]:
    _, rows = _read_commented_csv(text, where)
    curves: dict[int, list[CurvePoint]] = {}
    for row in rows:
        point = CurvePoint(float(row["snr_db"]), float(row["bler"]), int(row["words"]),
                           int(row["block_errors"]))
        curves.setdefault(int(row["mcs_index"]), []).append(point)
    return {i: tuple(sorted(p, key=lambda q: q.snr_db)) for i, p in curves.items()}


def load_thresholds(source: int | str | os.PathLike = 1,
                    curves: str | os.PathLike | None = None) -> ThresholdTable:
    """Read a thresholds CSV: a shipped table (``1`` or ``2``) or a file from
    ``genjscc amc measure --out``; ``curves`` is its points file (for a shipped table the
    shipped one)."""
    if isinstance(source, int) and not isinstance(source, bool):
        return _shipped(check_table(source))
    path = Path(source)
    meta, rows = _read_commented_csv(path.read_text(), str(path))
    points = _read_curves(Path(curves).read_text(), str(curves)) if curves else {}
    return _table_from_rows(meta, rows, points, str(path))


@cache
def _shipped(table: int) -> ThresholdTable:
    folder = resources.files("genjscc") / "data" / "amc"
    name = f"thresholds_table{table}.csv"
    try:
        text = (folder / name).read_text()
    except FileNotFoundError:
        raise ValueError(f"no shipped thresholds for MCS table {table} ({name}); measure "
                         f"them with measure_thresholds(table={table})") from None
    meta, rows = _read_commented_csv(text, name)
    curves_file = folder / f"bler_curves_table{table}.csv"
    points = _read_curves(curves_file.read_text(), curves_file.name) if curves_file.is_file() \
        else {}
    return _table_from_rows(meta, rows, points, name)


def _table_from_rows(meta: dict[str, str], rows: list[dict[str, str]],
                     curves: dict[int, tuple[CurvePoint, ...]], where: str) -> ThresholdTable:
    try:
        snr = {int(r["mcs_index"]): float(r["snr_db"]) for r in rows}
        target = float(meta["target_bler"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where}: not a thresholds file of genjscc amc measure ({exc})") from exc
    return ThresholdTable(snr, target, meta, curves)


def snr_thresholds(table: int = 1, target_bler: float = DEFAULT_TARGET_BLER) -> dict[int, float]:
    """Shipped SNR thresholds: I_MCS -> Es/N0 (dB) at which the BLER falls to ``target_bler``.

    The shipped files hold the crossing at their own target (10 %); another target is
    interpolated from the shipped measured points, which cover BLER from about 1 down to a
    few percent. NaN marks an MCS that was not measured.

    Raises:
        ValueError: the target is outside what the measured points cover for some MCS
            (measure it with :func:`measure_thresholds`).
    """
    shipped = _shipped(check_table(table))
    target = _check_bler(target_bler)
    if math.isclose(target, shipped.target_bler, rel_tol=1e-9):
        return dict(shipped.snr_db)
    out = {}
    for index in shipped.snr_db:
        snr = interpolate_snr(shipped.curves.get(index, ()), target)
        if math.isnan(snr):
            raise ValueError(
                f"the shipped points of MCS table {table} do not bracket BLER {target:g} for "
                f"MCS {index}; use target_bler={shipped.target_bler:g} or measure them with "
                f"measure_thresholds(table={table}, target_bler={target:g})"
            )
        out[index] = snr
    return out


def select_mcs(
    snr_db: float,
    table: int = 1,
    target_bler: float = DEFAULT_TARGET_BLER,
    margin_db: float = 0.0,
    thresholds: dict[int, float] | None = None,
) -> MCSEntry:
    """The MCS to use at an estimated SNR: among the MCS whose threshold is at most
    ``snr_db - margin_db``, the one with the highest spectral efficiency (the higher I_MCS on
    a tie); MCS 0 when the SNR is below every threshold.

    Where the thresholds rise with the spectral efficiency this is simply the highest such
    I_MCS. Table 1 has one exception: MCS 17 (64QAM, SE 2.5664) has a lower efficiency than
    MCS 16 (16QAM, SE 2.5703) but a 1.3 dB higher threshold, so it is never the best choice
    and is skipped; taking the highest index instead would pick it above 9.9 dB and lower
    the goodput (docs/amc.md).

    Args:
        snr_db: estimated Es/N0 per complex symbol (dB).
        table: MCS index table, 1 or 2.
        target_bler: BLER the choice must not exceed (at the shipped allocation size).
        margin_db: back-off subtracted from the estimate (dB); > 0 is conservative, < 0
            aggressive.
        thresholds: I_MCS -> threshold (dB) to use instead of the shipped ones (e.g. from
            :func:`load_thresholds` of a new measurement); NaN entries are never chosen.

    Returns:
        The chosen :class:`~genjscc.core.amc.tables.MCSEntry`. Its spectral efficiency is
        non-decreasing in ``snr_db`` and non-increasing in ``margin_db``.
    """
    snr = _check_finite(snr_db, "snr_db")
    margin = _check_finite(margin_db, "margin_db")
    table = check_table(table)
    limits = snr_thresholds(table, target_bler) if thresholds is None else thresholds
    entries = mcs_table(table)
    ok = [entries[i] for i, t in limits.items()
          if 0 <= i < len(entries) and math.isfinite(t) and t <= snr - margin]
    if not ok:
        return entries[0]
    return max(ok, key=lambda e: (e.spectral_efficiency, e.index))
