"""Deep JSCC against the separation baseline: PSNR vs SNR at ratios 1/6, 1/12 and 1/24, AWGN and
Rayleigh, on held-out photographs; the cliff and leveling of a wrong SNR estimate; encoder and
decoder throughput on CPU.

Both schemes get the same channel uses (ratio x 3 H' W', sizes padded to multiples of 8) and
the same energy (Es = 1 per channel use). Separation = HEIF (pillow-heif, HEVC intra) at the
highest quality that fits + CRC + 5G NR LDPC + QAM, MCS (TS 38.214 table 1) chosen from the
SNR estimate with 1 dB back-off, layered BP; a lost image counts as the mid-gray image. SNR =
Es/N0 per complex channel use (docs/conventions.md). Rayleigh: one coefficient per image,
perfect CSI at the receiver, the transmitter only knows the average SNR.

Targets checked: no cliff (JSCC loses at most 1.5 dB PSNR per dB of SNR between
neighbouring points); JSCC at least 2 dB above separation at SNR <= 2 dB and whenever the true
SNR is below the estimate.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from benchlib import DATA, add_common_args, emit, jscc_throughput, setup_threads, table
from genjscc.core.jscc import load_model, parse_ratio
from genjscc.core.jscc.evaluate import evaluate_schemes
from genjscc.core.jscc.images import list_images, load_image, sample_images
from genjscc.core.jscc.separation import SeparationLink
from genjscc.zoo import list_models

DEFAULT_IMAGES = DATA / "images" / "bsds500" / "test"
SNRS = [-4.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0]
MISMATCH_TRUE = [6.0, 8.0, 9.0, 11.0, 12.0, 14.0, 16.0]
MISMATCH_ESTIMATE = 10.0


def _models(names: str, ratios: list[str]) -> list:
    """(name, model) of the JSCC models to measure: ``names``, else every shipped one at
    ``ratios``, in ratio order then name."""
    chosen = [n.strip() for n in names.split(",") if n.strip()] or [
        m.name for m in list_models() if m.kind == "jscc"]
    wanted = {parse_ratio(r) for r in ratios}
    models = [(n, load_model(n)) for n in chosen]
    if not names:
        models = [(n, m) for n, m in models if m.ratio in wanted]
    return sorted(models, key=lambda nm: (-nm[1].ratio, nm[0]))


def _by(points, scheme):
    return {(p.snr_db, p.estimated_snr_db): p for p in points if p.scheme == scheme}


def _curve_rows(ratio, channel, points):
    jscc, sep = _by(points, "jscc"), _by(points, "separation-heif")
    rows = []
    for key in sorted(jscc):
        j, s = jscc[key], sep[key]
        rows.append([ratio, channel, f"{key[0]:g}", f"{key[1]:g}", f"{j.ebno_db:.2f}",
                     f"{j.psnr_db:.2f}", f"{j.ms_ssim:.4f}", f"{s.psnr_db:.2f}",
                     f"{s.ms_ssim:.4f}", f"{s.failures}/{s.images}",
                     ",".join(str(m) for m in s.extra["mcs"]), f"{s.extra['bpp']:.3f}",
                     f"{j.psnr_db - s.psnr_db:+.2f}"])
    return rows


def _verdicts(ratio, channel, curve, mismatch):
    out = []
    jscc = sorted((p for p in curve if p.scheme == "jscc"), key=lambda p: p.snr_db)
    slopes = [(b.psnr_db - a.psnr_db) / (b.snr_db - a.snr_db) for a, b in itertools.pairwise(jscc)]
    worst_drop = max([*slopes, 0.0])  # PSNR lost per dB when the SNR falls by one step
    verdict = "met" if worst_drop <= 1.5 else "NOT met"
    out.append(f"{ratio} {channel}: JSCC's largest PSNR drop per dB of SNR going down is "
               f"{worst_drop:.2f} dB/dB (target <= 1.5: {verdict}).")
    j, s = _by(curve, "jscc"), _by(curve, "separation-heif")
    low = [(k[0], j[k].psnr_db - s[k].psnr_db) for k in sorted(j) if k[0] <= 2.0]
    ok = all(d >= 2.0 for _, d in low)
    out.append(f"{ratio} {channel}: JSCC - separation at SNR <= 2 dB: "
               + ", ".join(f"{d:+.2f} dB at {snr:g}" for snr, d in low)
               + f" (target >= +2 dB: {'met' if ok else 'NOT met'}).")
    if mismatch:
        j, s = _by(mismatch, "jscc"), _by(mismatch, "separation-heif")
        below = [(k[0], j[k].psnr_db - s[k].psnr_db) for k in sorted(j) if k[0] < k[1]]
        ok = all(d >= 2.0 for _, d in below)
        out.append(f"{ratio} {channel}: true SNR below the estimate of {MISMATCH_ESTIMATE:g} dB: "
                   + ", ".join(f"{d:+.2f} dB at {snr:g}" for snr, d in below)
                   + f" (target >= +2 dB: {'met' if ok else 'NOT met'}).")
        wins = [f"{k[0]:g}" for k in sorted(j) if s[k].psnr_db > j[k].psnr_db]
        if wins:
            out.append(f"{ratio} {channel}: with the estimate at {MISMATCH_ESTIMATE:g} dB "
                       f"separation wins at true SNR {', '.join(wins)} dB.")
    wins = [f"{k[0]:g}" for k in sorted(_by(curve, 'jscc'))
            if _by(curve, "separation-heif")[k].psnr_db > _by(curve, "jscc")[k].psnr_db]
    out.append(f"{ratio} {channel}, exact estimate: separation (HEIF) wins at "
               + (f"SNR {', '.join(wins)} dB." if wins else "no SNR."))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES,
                    help="held-out images (default: BSDS500 test of ../shared, else the "
                    "shipped samples)")
    ap.add_argument("--max-images", type=int, default=8, help="images per point (default 8)")
    ap.add_argument("--ratios", default="1/6,1/12,1/24",
                    help="bandwidth ratios (default 1/6,1/12,1/24)")
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--models", default="",
                    help="zoo JSCC models, comma-separated (default: every shipped one at "
                    "--ratios)")
    add_common_args(ap)
    args = ap.parse_args(argv)
    threads = setup_threads(args.threads)
    files = list_images(args.images) if args.images.is_dir() else sample_images()
    images = [load_image(f) for f in files[:args.max_images]]
    snrs, mismatch_true, repeats = SNRS, MISMATCH_TRUE, 5
    ratios = [r.strip() for r in args.ratios.split(",")]
    if args.quick:
        images = [img[:, :64, :96] for img in images[:1]]
        snrs, mismatch_true, repeats, ratios = [0.0, 10.0], [8.0, 12.0], 1, ratios[:1]
    link = SeparationLink("heif", table=1, margin_db=1.0)
    models = _models(args.models, ratios)
    curve_rows, verdicts, speed_rows = [], [], []
    for name, model in models:
        ratio, label = str(model.ratio), f"{name} ({model.ratio})"
        for channel in args.channels.split(","):
            t0 = time.perf_counter()
            curve, _ = evaluate_schemes(images, snrs, model, None, ratio, channel, [link])
            mism, _ = evaluate_schemes(images, mismatch_true, model, [MISMATCH_ESTIMATE], ratio,
                                       channel, [link])
            print(f"{label} {channel}: {time.perf_counter() - t0:.0f} s", flush=True)
            curve_rows += _curve_rows(label, channel, curve)
            curve_rows += _curve_rows(label, channel, mism)
            verdicts += _verdicts(label, channel, curve, mism)
        for h, w in ((321, 481), (512, 768)):
            enc, dec = jscc_throughput(model, h, w, repeats)
            speed_rows.append([label, f"{w}x{h}", f"{enc:.2f}", f"{enc * h * w / 1e6:.2f}",
                               f"{dec:.2f}", f"{dec * h * w / 1e6:.2f}"])
    missing = [r for r in ratios if all(m.ratio != parse_ratio(r) for _, m in models)]
    body = [
        f"{len(images)} held-out photographs (the first of BSDS500 {files[0].parent.name}/, "
        "coded whole"
        f"{', cropped to 64x96 (quick run)' if args.quick else ''}); torch threads = {threads}; "
        "one noise seed per (image, SNR), the same for both schemes. JSCC = each shipped "
        "JSCC model of the zoo (its card gives its training budget; jscc-r* are the "
        "blocks' defaults). Separation = HEIF + CRC + 5G NR "
        "LDPC + QAM, MCS from the estimate (table 1, 1 dB back-off), lost images count as "
        "mid-gray; MCS = the I_MCS used, bpp = the file's bits per pixel.",
        table(["model (ratio)", "channel", "SNR (dB)", "estimate (dB)",
               "Eb/N0 per 8-bit value (dB)", "JSCC PSNR", "JSCC MS-SSIM", "separation PSNR",
               "separation MS-SSIM", "lost", "MCS", "bpp", "JSCC - separation"], curve_rows),
        "Targets:\n\n" + "\n".join(f"- {v}" for v in verdicts),
        "Throughput of the JSCC model on CPU (one image at a time, float32):",
        table(["model (ratio)", "size", "encoder images/s", "encoder Mpixel/s", "decoder images/s",
               "decoder Mpixel/s"], speed_rows),
    ]
    if missing:
        body.append(f"Not measured: no shipped model for ratio {', '.join(missing)}.")
    emit(args, "\n\n".join(body))


if __name__ == "__main__":
    main()
