"""The demo report: PNG plots beside closed-form curves, and a Markdown summary."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genjscc.core import theory
from genjscc.core.plotting import pyplot


@dataclass
class LinkPoint:
    """Measured figures of one (modulation, SNR) point of a loopback run."""

    modulation: str
    bits_per_symbol: int
    esno_db: float
    ebno_db: float
    packets_sent: int
    packets_received: int
    packets_crc_ok: int
    bits_compared: int
    bit_errors: int
    esno_rx_db: float = float("nan")  # 1 / (median noise_var the receiver reported), in dB

    @property
    def ber(self) -> float:
        return self.bit_errors / self.bits_compared if self.bits_compared else float("nan")

    @property
    def delivery(self) -> float:
        """Fraction of sent packets received with a good CRC."""
        return self.packets_crc_ok / self.packets_sent if self.packets_sent else float("nan")


@dataclass
class Section:
    """One part of the report: a title, Markdown text and the images it shows."""

    title: str
    text: str
    images: list[str] = field(default_factory=list)


def plot_ber(points: Sequence[LinkPoint], path: Path, title: str, label: str) -> None:
    """BER vs Eb/N0 per modulation, measured (markers) beside theory (lines)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for index, modulation in enumerate(dict.fromkeys(p.modulation for p in points)):
        rows = [p for p in points if p.modulation == modulation]
        color = f"C{index}"
        ebno = np.array([p.ebno_db for p in rows])
        grid = np.linspace(ebno.min() - 1, ebno.max() + 1, 100)
        ax.semilogy(grid, theory.ber_awgn(rows[0].bits_per_symbol, grid), color=color,
                    lw=1, label=f"{modulation} theory (AWGN)")
        measured = np.array([p.ber if p.bit_errors else np.nan for p in rows])
        ax.semilogy(ebno, measured, "o", color=color, label=f"{modulation} {label}")
    ax.set_xlabel("Eb/N0 per information bit (dB)")
    ax.set_ylabel("bit error rate")
    ax.set_ylim(1e-6, 0.5)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_delivery(points: Sequence[LinkPoint], packet_bits: int, path: Path, title: str,
                  label: str) -> None:
    """Packet delivery (CRC good) vs Eb/N0, beside (1 - BER_theory)^bits."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for index, modulation in enumerate(dict.fromkeys(p.modulation for p in points)):
        rows = [p for p in points if p.modulation == modulation]
        color = f"C{index}"
        ebno = np.array([p.ebno_db for p in rows])
        grid = np.linspace(ebno.min() - 1, ebno.max() + 1, 100)
        expected = theory.packet_success_rate(
            theory.ber_awgn(rows[0].bits_per_symbol, grid), packet_bits)
        ax.plot(grid, expected, color=color, lw=1, label=f"{modulation} theory")
        ax.plot(ebno, [p.delivery for p in rows], "o", color=color,
                label=f"{modulation} {label}")
    ax.set_xlabel("Eb/N0 per information bit (dB)")
    ax.set_ylabel("packets delivered with good CRC")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def points_table(points: Sequence[LinkPoint]) -> str:
    """A Markdown table of every measured point."""
    lines = ["| modulation | Es/N0 (dB) | Eb/N0 (dB) | Es/N0 seen by RX (dB) | packets sent | "
             "received | CRC ok | bits | bit errors | BER | BER theory |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        ber_theory = float(theory.ber_awgn(p.bits_per_symbol, p.ebno_db))
        lines.append(
            f"| {p.modulation} | {p.esno_db:.1f} | {p.ebno_db:.2f} | {p.esno_rx_db:.1f} | "
            f"{p.packets_sent} | "
            f"{p.packets_received} | {p.packets_crc_ok} | {p.bits_compared} | {p.bit_errors} | "
            f"{p.ber:.2e} | {ber_theory:.2e} |")
    return "\n".join(lines)


def write_report(out_dir: Path, sections: Sequence[Section], command: str,
                 note: str = "") -> Path:
    """Write ``report.md`` in ``out_dir`` (images already there) and return its path.

    ``note``: a line under the header (e.g. the wall time of each part)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# gr-genjscc demo report", "",
        f"Produced by `{command}` on {platform.node()} ({platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}), {now}.", "",
    ]
    if note:
        parts += [note, ""]
    parts += ["Contents: " + "; ".join(section.title for section in sections) + ".", ""]
    for section in sections:
        parts += [f"## {section.title}", "", section.text, ""]
        parts += [f"![{Path(image).stem}]({image})" for image in section.images] + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(parts))
    return path
