"""Demo part ``coded``: CRC + 5G NR LDPC coded packets through GNU Radio, beside the uncoded link.

Each coded link is the flowgraph of :func:`genjscc.demo.link.run_coded_point` (our blocks)::

    ldpc_encoder (CRC-24A, 5G NR BG2 K=512) -> qam_mapper -> medium -> soft_demapper
        -> ldpc_decoder (BP) -> CRC check

with ``medium`` the PDU channel (AWGN, ideal sync and CSI) or the OFDM loopback
(``ofdm_qam_tx -> channels.channel_model -> ofdm_qam_rx``). A packet carries 60 payload bytes
in one codeword of ``e`` code bits (1024, or 1026 for 64-QAM whose symbols hold 6 bits).
Beside each coded point the same 60 bytes are sent uncoded (60 + 3 CRC bytes, ``run_point``) at
the same Eb/N0 *per payload bit*, so the two curves compare the energy each scheme spends per
bit of data (docs/conventions.md). BLER counts every packet not delivered with a good CRC and
the right payload (lost packets included).

results.json: ``"coded"``: one entry per link with its settings and ``"points"``, each holding
``ebno_db`` (per payload bit), the coded :class:`~genjscc.demo.link.CodedLinkPoint` fields plus
``bler`` and ``channel_ber``, and ``uncoded``: the uncoded reference point at that Eb/N0.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genjscc.core.mapping import constellation

PAYLOAD_BYTES = 60  # data bytes per packet: + CRC-24A = 504 bits, one K = 512 codeword
CRC_BYTES = 3


@dataclass(frozen=True)
class CodedLink:
    """A coded link of the demo: modulation, medium and the Eb/N0 grids (dB per payload bit)
    of the coded link (its waterfall) and of the uncoded reference (down to few losses)."""

    modulation: str
    medium: str
    ebno_db: tuple[float, ...]
    uncoded_ebno_db: tuple[float, ...]

    @property
    def name(self) -> str:
        return f"{self.modulation}-{self.medium}"


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    return tuple(float(x) for x in np.round(np.arange(start, stop + 1e-9, step), 3))


# Coded grids span each link's waterfall, uncoded ones reach low packet loss; where they
# overlap both are measured at the same Eb/N0. OFDM: gr-digital's sync needs Es/N0 >= 12 dB,
# and its one-symbol channel estimate costs 64-QAM about 6 dB (see the uncoded OFDM section).
LINKS = {
    link.name: link
    for link in (
        CodedLink("qpsk", "pdu", _grid(0.5, 3.0, 0.5), _grid(0.0, 10.0, 1.0)),
        CodedLink("16qam", "pdu", _grid(2.0, 5.0, 0.5), _grid(2.0, 14.0, 1.0)),
        CodedLink("64qam", "pdu", _grid(5.0, 8.0, 0.5), _grid(5.0, 17.0, 1.0)),
        CodedLink("16qam", "ofdm", _grid(8.0, 12.0, 1.0), _grid(8.0, 22.0, 2.0)),
        CodedLink("64qam", "ofdm", _grid(13.5, 17.5, 1.0), _grid(13.5, 27.5, 2.0)),
    )
}
DEFAULT_LINKS = "qpsk-pdu,64qam-ofdm"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--coded-links", default=DEFAULT_LINKS, metavar="LIST",
                       help=f"coded links MODULATION-MEDIUM (default {DEFAULT_LINKS}; "
                            f"available: {', '.join(LINKS)})")
    group.add_argument("--coded-packets", type=int, default=200,
                       help="packets per coded point, and per uncoded reference (default 200)")
    group.add_argument("--coded-decoder", default="bp",
                       help="ldpc_decoder decoder (default bp: sum-product, flooding)")
    group.add_argument("--coded-iters", type=int, default=50,
                       help="maximum BP iterations (default 50; early stop at zero syndrome)")


def _links(args: argparse.Namespace) -> list[CodedLink]:
    names = [n.strip().lower() for n in args.coded_links.split(",") if n.strip()]
    for name in names:
        if name not in LINKS:
            raise ValueError(f"unknown coded link {name!r}; use {', '.join(LINKS)}")
    return [LINKS[n] for n in names]


def check_arguments(args: argparse.Namespace) -> None:
    from genjscc.core.fec.decoders import list_decoders

    _links(args)
    if args.coded_packets < 10:
        raise ValueError("--coded-packets must be at least 10")
    if args.coded_iters < 1:
        raise ValueError("--coded-iters must be at least 1")
    if args.coded_decoder.strip().lower().replace("_", "-") not in list_decoders():
        raise ValueError(f"unknown --coded-decoder {args.coded_decoder!r}; "
                         f"use one of {', '.join(list_decoders())}")


def code_spec(modulation: str) -> str:
    """5G NR BG2, K = 512, with e >= 1024 code bits filling whole symbols."""
    bps = constellation(modulation).bits_per_symbol
    return f"5gnr:bg2:k=512:e={bps * math.ceil(1024 / bps)}"


def run_link(link: CodedLink, packets: int, decoder: str, num_iters: int, seed: int,
             progress=None) -> dict:
    """Measure one coded link on its grid and the uncoded reference on its own."""
    from genjscc.core.channel import ebno_to_esno_db
    from genjscc.demo.link import run_coded_point, run_point

    bps = constellation(link.modulation).bits_per_symbol
    spec = code_spec(link.modulation)
    e = int(spec.rpartition("=")[2])
    payload_bits = 8 * PAYLOAD_BYTES
    coded, uncoded = [], []
    for i, ebno_db in enumerate(link.ebno_db):
        esno_db = float(ebno_to_esno_db(ebno_db, bps, payload_bits / e))
        point = run_coded_point(link.modulation, esno_db, medium=link.medium, code=spec,
                                decoder=decoder, num_iters=num_iters, num_packets=packets,
                                payload_bytes=PAYLOAD_BYTES, seed=seed * 1000 + i)
        coded.append({**asdict(point), "ebno_db": ebno_db, "ebno_tx_db": point.ebno_db,
                      "bler": point.bler, "channel_ber": point.channel_ber})
        if progress is not None:
            progress.update(1)
    uncoded_bits = payload_bits + 8 * CRC_BYTES
    for i, ebno_db in enumerate(link.uncoded_ebno_db):
        esno_db = float(ebno_to_esno_db(ebno_db, bps, payload_bits / uncoded_bits))
        point = run_point(link.modulation, esno_db, medium=link.medium, num_packets=packets,
                          payload_bytes=PAYLOAD_BYTES + CRC_BYTES, seed=seed * 1000 + 500 + i)
        uncoded.append({**asdict(point), "ebno_db": ebno_db, "ebno_tx_db": point.ebno_db,
                        "ber": point.ber, "packet_loss": 1.0 - point.delivery})
        if progress is not None:
            progress.update(1)
    return {"link": link.name, "modulation": link.modulation, "medium": link.medium,
            "code": spec, "crc": "24A", "payload_bytes": PAYLOAD_BYTES, "decoder": decoder,
            "num_iters": num_iters, "packets": packets, "points": coded, "uncoded": uncoded}


def run(args: argparse.Namespace, out: Path) -> tuple[list, dict]:
    from tqdm import tqdm

    links = _links(args)
    results = []
    total = sum(len(link.ebno_db) + len(link.uncoded_ebno_db) for link in links)
    with tqdm(total=total, desc="demo coded", unit="point", file=sys.stderr) as bar:
        for link in links:
            results.append(run_link(link, args.coded_packets, args.coded_decoder,
                                    args.coded_iters, args.seed, progress=bar))
    return [_section(results, out)], {"coded": results}


def plot_coded(results: list[dict], path: Path) -> None:
    """BLER of the coded links and packet loss of the uncoded ones against Eb/N0."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()

    from genjscc.core import theory

    fig, ax = plt.subplots(figsize=(7.0, 5.6))
    floor = 0.5 / max(r["packets"] for r in results)
    for index, res in enumerate(results):
        color = f"C{index}"
        label = f"{res['modulation']} {res['medium'].upper()}"
        for key, style, what in (("points", "o-", "LDPC coded (BLER)"),
                                 ("uncoded", "s:", "uncoded (packet loss)")):
            x = np.array([p["ebno_db"] for p in res[key]])
            y = np.array([p["bler" if key == "points" else "packet_loss"] for p in res[key]])
            ax.semilogy(x, np.maximum(y, floor), style, color=color, label=f"{label} {what}")
            zero = y == 0
            if zero.any():  # no loss seen: an open marker at half a packet
                ax.semilogy(x[zero], np.full(zero.sum(), floor), style[0], color=color,
                            mfc="white")
        if res["medium"] == "pdu" and res["modulation"] in ("bpsk", "qpsk"):
            grid = np.linspace(res["points"][0]["ebno_db"] - 1,
                               res["uncoded"][-1]["ebno_db"] + 1, 200)
            e = res["points"][0]["codewords_per_packet"] * int(res["code"].rpartition("=")[2])
            k = 8 * res["payload_bytes"]
            ax.semilogy(grid, theory.normal_approximation_bler(e, k, grid), "--", color="grey",
                        lw=1, label=f"normal approximation, best ({e}, {k}) code")
            tx = grid + 10 * np.log10(k / (k + 8 * CRC_BYTES))  # per transmitted bit
            loss = 1 - theory.packet_success_rate(theory.ber_awgn(2, tx), k + 8 * CRC_BYTES)
            ax.semilogy(grid, loss, "-", color=color, lw=0.6, alpha=0.6,
                        label=f"{label} uncoded theory")
    ax.plot([], [], "o", color="grey", mfc="white", label="no packet lost (drawn at 0.5/packets)")
    ax.set_xlabel("Eb/N0 per payload bit (dB)")
    ax.set_ylabel("packet error rate (not delivered with good CRC)")
    ax.set_ylim(floor / 2, 1.5)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("CRC + 5G NR LDPC (BG2, K=512, R~0.47) vs uncoded, same payload")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(results: list[dict]) -> str:
    lines = ["| link | Eb/N0 per payload bit (dB) | coded Es/N0 (dB) | channel BER | "
             "mean BP it. | coded BLER | uncoded Es/N0 (dB) | uncoded BER | "
             "uncoded packet loss |", "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        coded = {p["ebno_db"]: p for p in res["points"]}
        uncoded = {p["ebno_db"]: p for p in res["uncoded"]}
        for ebno in sorted(coded.keys() | uncoded.keys()):
            c, u = coded.get(ebno), uncoded.get(ebno)
            cells = ([f"{c['esno_db']:.2f}", f"{c['channel_ber']:.3f}",
                      f"{c['mean_iterations']:.1f}", f"{c['bler']:.3f}"] if c else ["-"] * 4)
            cells += ([f"{u['esno_db']:.2f}", f"{u['ber']:.2e}", f"{u['packet_loss']:.3f}"]
                      if u else ["-"] * 3)
            lines.append(f"| {res['link']} | {ebno:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crossing_db(ebno_db, bler, target: float = 0.1, floor: float = 1e-3) -> float:
    """Eb/N0 where a falling BLER curve first crosses ``target`` (log-linear), or NaN.

    A zero BLER (no error seen) is read as ``floor`` (e.g. half an error)."""
    for i in range(len(bler) - 1):
        b0, b1 = max(bler[i], floor), max(bler[i + 1], floor)
        if b0 >= target > b1:
            t = (math.log(b0) - math.log(target)) / (math.log(b0) - math.log(b1))
            return float(ebno_db[i] + t * (ebno_db[i + 1] - ebno_db[i]))
    return float("nan")


def _gain_text(results: list[dict]) -> str:
    """The coding gain at a packet error rate of 0.1, where both curves cross it."""
    parts = []
    for res in results:
        floor = 0.5 / res["packets"]
        coded = crossing_db([p["ebno_db"] for p in res["points"]],
                            [p["bler"] for p in res["points"]], floor=floor)
        uncoded = crossing_db([p["ebno_db"] for p in res["uncoded"]],
                              [p["packet_loss"] for p in res["uncoded"]], floor=floor)
        if math.isfinite(coded) and math.isfinite(uncoded):
            parts.append(f"{res['link']}: {coded:.1f} dB coded vs {uncoded:.1f} dB uncoded, "
                         f"a coding gain of {uncoded - coded:.1f} dB")
        elif math.isfinite(coded):
            parts.append(f"{res['link']}: {coded:.1f} dB coded, while the uncoded link still "
                         f"loses {res['uncoded'][-1]['packet_loss']:.0%} of its packets at "
                         f"{res['uncoded'][-1]['ebno_db']:g} dB")
    if not parts:
        return ""
    return " Eb/N0 at a packet error rate of 0.1: " + "; ".join(parts) + "."


def _gap_text(results: list[dict]) -> str:
    from genjscc.core import theory

    for res in results:
        if (res["modulation"], res["medium"]) != ("qpsk", "pdu"):
            continue
        pts = res["points"]
        x = [p["ebno_db"] for p in pts]
        coded = crossing_db(x, [p["bler"] for p in pts], floor=0.5 / res["packets"])
        grid = np.linspace(min(x) - 2, max(x) + 2, 801)
        e = pts[0]["codewords_per_packet"] * int(res["code"].rpartition("=")[2])
        bound = crossing_db(grid, theory.normal_approximation_bler(e, 8 * PAYLOAD_BYTES, grid))
        if math.isfinite(coded) and math.isfinite(bound):
            return (f"; at BLER 0.1 the coded QPSK link needs {coded:.2f} dB, "
                    f"{coded - bound:.2f} dB more than the approximation ({bound:.2f} dB)")
    return ""


def _section(results: list[dict], out: Path):
    from genjscc.demo import report

    plot_coded(results, out / "coded_bler.png")
    first = results[0]
    text = (
        "ldpc_encoder (CRC-24A + 5G NR LDPC, base graph 2, K = 512, rate matching to e code "
        "bits) -> qam_mapper -> channel -> soft_demapper -> ldpc_decoder "
        f"({first['decoder']}, at most {first['num_iters']} iterations, early stop) -> CRC "
        f"check, all in GNU Radio flowgraphs; {first['packets']} packets of "
        f"{PAYLOAD_BYTES} payload bytes per point. The uncoded reference sends the same "
        f"payload with its CRC-24A and no LDPC ({PAYLOAD_BYTES + CRC_BYTES} bytes) at the same "
        "Eb/N0 per payload bit, so the coded link spends the same energy per data bit over "
        "about twice the channel uses." + _gain_text(results) + " The dashed line is the normal "
        "approximation (Polyanskiy-Poor-Verdu) of the best code of the same length and rate "
        "on BI-AWGN, for QPSK" + _gap_text(results) + ".\n\n" + _table(results))
    return report.Section(title="Coded link: CRC + 5G NR LDPC + QAM through GNU Radio",
                          text=text, images=["coded_bler.png"])
