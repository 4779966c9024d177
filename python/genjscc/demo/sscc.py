"""Demo part ``sscc``: separate source and channel coding of text (LM-SSCC) over a coded link.

A shipped English text that the LM never saw in training (genjscc/data/text) is compressed by
the shipped ``lm-small`` model (LM + range coding, chunks coded independently), by ``xz -9e``
and by ``gzip -9``; each compressed stream is cut into packets of one codeword, sent through
the real GNU Radio coded link of the ``coded`` part (CRC-24A + 5G NR LDPC BG2, k = 512,
e = 1024, QPSK, ``pdu_channel`` AWGN, BP-50), reassembled with lost packets zero-filled, and
decompressed. At one Es/N0 every scheme sees the same channel per symbol; the LM stream is
shorter, so it needs fewer symbols, less energy per text bit and less airtime, and a lost
packet costs it only the chunks the packet overlaps, where xz and gzip lose everything from
the first lost packet on.

results.json: ``"sscc"``: a list of points ``{coder, esno_db, ebno_db_per_text_bit, symbols,
packets, packets_lost, text_bytes, recovered_bytes, compressed_bytes}``.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import math
import zlib
from pathlib import Path

ESNO_DB = (0.5, 1.0, 1.25, 1.5, 2.0)  # per QPSK symbol: the LDPC waterfall and above
CODE = "5gnr:bg2:k=512:e=1024"
CODERS = ("lm-small", "xz -9e", "gzip -9")


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--sscc-esno", default=",".join(f"{x:g}" for x in ESNO_DB),
                       metavar="LIST", help="Es/N0 points in dB per QPSK symbol "
                       f"(default {','.join(f'{x:g}' for x in ESNO_DB)})")
    group.add_argument("--sscc-chunk", type=int, default=1024, metavar="BYTES",
                       help="lm-small chunk size: a lost packet loses only the chunks it "
                       "overlaps (default 1024)")


def _esno_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--sscc-esno {text!r}: write comma-separated dB values") from None
    if not values or not all(math.isfinite(v) and -10.0 <= v <= 30.0 for v in values):
        raise ValueError("--sscc-esno needs one or more Es/N0 values between -10 and 30 dB")
    return values


def check_arguments(args: argparse.Namespace) -> None:
    _esno_list(args.sscc_esno)
    if not 64 <= args.sscc_chunk <= 1 << 16:
        raise ValueError("--sscc-chunk must be 64 to 65536 bytes")


def sample_text() -> bytes:
    """The shipped held-out English text (see genjscc/data/text/SOURCES.md)."""
    from importlib import resources

    return (resources.files("genjscc") / "data" / "text" / "areopagitica-excerpt.txt"
            ).read_bytes()


def _prefix(stream_decoder, packets: list[bytes | None], tail: int) -> bytes:
    """What a stream decoder yields from the packets up to the first lost or corrupt one."""
    out = []
    for index, packet in enumerate(packets):
        if packet is None:
            break
        data = packet[:tail] if index == len(packets) - 1 else packet
        try:
            out.append(stream_decoder.decompress(data))
        except (zlib.error, lzma.LZMAError, EOFError):
            break
    return b"".join(out)


def _common_prefix(original: bytes, got: bytes) -> int:
    """Length of the longest common prefix: what a stream decoder recovered correctly."""
    n = min(len(original), len(got))
    return next((i for i in range(n) if original[i] != got[i]), n)


def _lm_recovered(original: bytes, blob: bytes, model, chunk: int) -> int:
    """Bytes of the chunks that came back exactly (lost chunks are placeholders: not counted);
    0 when the container's header or chunk table was lost."""
    from genjscc.core.source.codec import decompress
    from genjscc.errors import GenjsccError

    try:
        result = decompress(blob, model, use_placeholder=True)
    except GenjsccError:
        return 0
    got = result.data
    return sum(len(original[i:i + chunk]) for i in range(0, len(original), chunk)
               if i // chunk not in result.problems and got[i:i + chunk] == original[i:i + chunk])


def run(args: argparse.Namespace, out: Path) -> tuple[list, dict]:
    import torch

    from genjscc.core.source.codec import compress, load_model
    from genjscc.demo.link import deliver_packets, packet_payload_bytes

    torch.set_num_threads(1)
    text = sample_text()
    model = load_model("small")
    streams = {"lm-small": compress(text, model, chunk_size=args.sscc_chunk,
                                     keep_chunks=True),
               "xz -9e": lzma.compress(text, preset=9 | lzma.PRESET_EXTREME),
               "gzip -9": gzip.compress(text, compresslevel=9, mtime=0)}
    size = packet_payload_bytes(CODE)
    points = []
    for esno in _esno_list(args.sscc_esno):
        for coder, stream in streams.items():
            packets = [stream[i:i + size].ljust(size, b"\0") for i in range(0, len(stream), size)]
            received, symbols = deliver_packets(packets, "qpsk", esno, CODE, seed=args.seed)
            if coder == "lm-small":
                joined = b"".join(p if p is not None else b"\0" * size for p in received)
                recovered = _lm_recovered(text, joined[:len(stream)], model, args.sscc_chunk)
            else:
                decoder = (lzma.LZMADecompressor() if coder.startswith("xz")
                           else zlib.decompressobj(wbits=31))
                got = _prefix(decoder, received, len(stream) - size * (len(packets) - 1))
                recovered = _common_prefix(text, got)
            points.append({
                "coder": coder, "esno_db": esno, "symbols": symbols,
                "ebno_db_per_text_bit": esno + 10 * math.log10(symbols / (8 * len(text))),
                "packets": len(packets), "packets_lost": sum(p is None for p in received),
                "text_bytes": len(text), "recovered_bytes": recovered,
                "compressed_bytes": len(stream)})
    _plot(points, out / "sscc_text.png")
    return [_section(points, args, len(text))], {"sscc": points}


def _plot(points: list[dict], path: Path) -> None:
    from genjscc.core.plotting import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, coder in enumerate(CODERS):
        rows = [p for p in points if p["coder"] == coder]
        share = [100 * p["recovered_bytes"] / p["text_bytes"] for p in rows]
        for ax, x in zip(axes, ("esno_db", "ebno_db_per_text_bit"), strict=True):
            ax.plot([p[x] for p in rows], share, "o-", color=f"C{index}",
                    label=f"{coder} ({rows[0]['compressed_bytes']} B, {rows[0]['symbols']} "
                    "symbols)")
    axes[0].set_xlabel("Es/N0 per QPSK symbol (dB)")
    axes[1].set_xlabel("energy per text bit, Eb/N0 (dB)")
    for ax in axes:
        ax.set_ylabel("text recovered (%)")
        ax.set_ylim(-3, 103)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Text over CRC + 5G NR LDPC + QPSK (GNU Radio PDU channel, AWGN, BP-50)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _section(points: list[dict], args: argparse.Namespace, text_bytes: int):
    from genjscc.demo import report

    first = {p["coder"]: p for p in points if p["esno_db"] == points[0]["esno_db"]}
    lm, xz = first["lm-small"], first["xz -9e"]
    lines = ["| coder | Es/N0 (dB) | Eb/N0 per text bit (dB) | bytes | packets | lost | "
             "text recovered |", "|---" * 7 + "|"]
    for p in points:
        lines.append(f"| {p['coder']} | {p['esno_db']:g} | {p['ebno_db_per_text_bit']:.2f} | "
                     f"{p['compressed_bytes']} | {p['packets']} | {p['packets_lost']} | "
                     f"{100 * p['recovered_bytes'] / p['text_bytes']:.1f} % |")
    text = (
        f"{text_bytes} bytes of English prose (Milton's *Areopagitica*, held out from the "
        "training of `lm-small`; genjscc/data/text) are compressed by the shipped `lm-small` "
        f"(chunks of {args.sscc_chunk} bytes, each coded alone), by `xz -9e` and by `gzip -9`, "
        "cut into packets of one codeword, and sent through the GNU Radio coded link: CRC-24A "
        "+ 5G NR LDPC (BG2, k = 512, e = 1024) + QPSK over `pdu_channel` (AWGN), BP with 50 "
        "iterations. Lost packets are zero-filled; the LM container names and replaces the "
        "chunks they hit (placeholders do not count as recovered; a lost packet of its header or "
        "chunk table, the first few packets, loses every chunk), xz and gzip keep what they "
        "decoded before the first lost packet.\n\n"
        f"`lm-small` needs {lm['compressed_bytes']} bytes ({lm['symbols']} symbols) where xz "
        f"needs {xz['compressed_bytes']} ({xz['symbols']}): "
        f"{lm['compressed_bytes'] / xz['compressed_bytes']:.2f} x the airtime and energy per "
        f"text bit ({10 * math.log10(lm['symbols'] / xz['symbols']):.2f} dB) at every Es/N0. "
        "The right plot puts the schemes on the energy each spends per bit of text. "
        "Reproduce the compression alone with `genjscc compress FILE OUT` (docs/lm-compression.md)."
        "\n\n" + "\n".join(lines))
    return report.Section(title="LM-SSCC: text through an LM source coder and 5G LDPC",
                          text=text, images=["sscc_text.png"])
