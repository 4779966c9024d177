"""`genjscc demo` end to end (small), and the flowgraph-lifetime regression it exposed."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genjscc.core import theory

pytestmark = pytest.mark.flowgraph

# as `make demo` runs it: GNU Radio's block threads ignore torch.set_num_threads, and with
# OMP_NUM_THREADS=2 (what `make test` exports) their spinning OpenMP threads made the demo
# several times slower on a busy 2-core machine
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_demo_writes_report_with_plots(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "genjscc.cli", "demo", "--out", str(out), "--modulations",
         "qpsk,16qam", "--packets", "40", "--step", "7", "--coded-links", "qpsk-pdu",
         "--coded-packets", "40", "--cliff-words", "30", "--jscc-images", "1",
         "--jscc-crop", "128", "--sscc-esno", "0,3", "--text-sentences", "6",
         "--text-ew", "8,20,32", "--resilient-images", "1", "--resilient-trials", "1"],
        capture_output=True, text=True, timeout=400, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (out / "report.md").read_text()
    for image in ("ber_pdu.png", "delivery_pdu.png", "ber_ofdm.png", "delivery_ofdm.png",
                  "coded_bler.png", "amc_cliff.png", "jscc_psnr.png", "jscc_mismatch.png",
                  "jscc_grid.png", "sscc_text.png", "text_awgn.png", "text_rayleigh.png",
                  "resilient_psnr.png", "resilient_grid.png"):
        assert f"({image})" in report
        assert (out / image).stat().st_size > 10_000
    for title in ("## Coded link", "## Link adaptation: the cliff and leveling effects"):
        assert title in report
    results = json.loads((out / "results.json").read_text())
    assert set(results["seconds"]) == {"links", "coded", "amc", "sscc", "jscc", "text",
                                          "resilient"}
    ofdm = results["ofdm"]
    # The highest-SNR OFDM point of each modulation delivers every packet.
    for modulation in ("qpsk", "16qam"):
        best = max((p for p in ofdm if p["modulation"] == modulation), key=lambda p: p["esno_db"])
        assert best["packets_crc_ok"] == best["packets_sent"], best
    # The PDU channel at Eb/N0 = 0 dB is where theory says: QPSK BER 0.0786.
    qpsk0 = next(p for p in results["pdu"] if p["modulation"] == "qpsk" and p["ebno_db"] < 0.1)
    assert abs(qpsk0["bit_errors"] / qpsk0["bits_compared"] - 0.0786) < 0.01
    _check_coded(results["coded"])
    _check_cliff(results["amc_cliff"])
    _check_jscc(results["jscc"])
    _check_sscc(results["sscc"])
    _check_text(results["text"])
    _check_resilient(results["resilient"])


def _check_resilient(rows: list[dict]) -> None:
    """Every received subset of the resilient codec's packets gives an image; each loss rate
    has one resilient row and the best HEIF + FEC row; the codec degrades with the loss."""
    resilient = {r["loss_rate"]: r for r in rows if r["scheme"] == "resilient"}
    fec = {r["loss_rate"]: r for r in rows if r["scheme"] == "heif-fec"}
    assert sorted(resilient) == sorted(fec) == [0.0, 0.1, 0.2, 0.3, 0.5]
    assert all(r["failures"] == 0 for r in resilient.values())
    assert resilient[0.0]["psnr_mean"] > resilient[0.5]["psnr_mean"] > 15.0


def _check_text(rows: list[dict]) -> None:
    """Text at equal energy per word: LM-SSCC exact at 32 dB on AWGN and all lost at 8 dB;
    every scheme spends the same energy per word (Es/N0 shifted by its channel uses)."""
    by = {(r["scheme"], r["channel"], r["ew_n0_db"]): r for r in rows}
    for scheme in ("lm-sscc-ecct", "lm-sscc"):
        assert by[scheme, "awgn", 32.0]["exact"] == 1.0
        assert by[scheme, "awgn", 8.0]["lost"] == by[scheme, "awgn", 8.0]["sentences"]
    for r in rows:
        expected = r["ew_n0_db"] - 10 * math.log10(r["channel_uses_per_word"])
        assert abs(r["esn0_db"] - expected) < 0.01, r


def _check_sscc(points: list[dict]) -> None:
    """Text over the coded link: all of it at 3 dB, none at 0 dB (below the waterfall), and
    the LM stream spends fewer symbols (less energy per text bit) than xz and gzip."""
    by = {(p["coder"], p["esno_db"]): p for p in points}
    for coder in ("lm-small", "xz -9e", "gzip -9"):
        assert by[coder, 3.0]["recovered_bytes"] == by[coder, 3.0]["text_bytes"], by[coder, 3.0]
        assert by[coder, 0.0]["packets_lost"] > 0
        assert by[coder, 0.0]["recovered_bytes"] < by[coder, 0.0]["text_bytes"]
    lm = by["lm-small", 3.0]
    for other in ("xz -9e", "gzip -9"):
        assert lm["symbols"] < 0.8 * by[other, 3.0]["symbols"]
        assert lm["ebno_db_per_text_bit"] < by[other, 3.0]["ebno_db_per_text_bit"] - 1.0


def _check_coded(coded: list[dict]) -> None:
    """The coded link's BLER falls through a waterfall and beats the uncoded link."""
    (link,) = coded
    assert link["link"] == "qpsk-pdu" and link["code"] == "5gnr:bg2:k=512:e=1024"
    points, uncoded = link["points"], link["uncoded"]
    bler = [p["bler"] for p in points]
    assert bler[0] > 0.5 and bler[-1] <= 0.05, bler  # 0.5 dB fails, 3 dB delivers
    assert all(b <= a + 0.15 for a, b in itertools.pairwise(bler)), bler
    for p in points:  # Eb/N0 per payload bit: 480 bits on 512 QPSK symbols
        assert p["esno_db"] == pytest.approx(p["ebno_db"] + 10 * math.log10(2 * 480 / 1024))
        assert p["packets_sent"] == 40 and p["codewords_per_packet"] == 1
    # The uncoded reference sits on theory (BER at 0 dB per payload bit, 504 bits sent)...
    u0 = uncoded[0]
    assert u0["ebno_db"] == 0.0
    assert u0["ber"] == pytest.approx(
        float(theory.ber_awgn(2, 10 * math.log10(480 / 504))), rel=0.1)
    # ... loses every packet where the coded link starts to deliver, and few at 10 dB
    loss = {p["ebno_db"]: p["packet_loss"] for p in uncoded}
    assert loss[10.0] <= 0.1 and loss[0.0] == 1.0
    common = [p for p in points if p["ebno_db"] in loss]
    assert len(common) >= 3
    for p in common:
        assert p["bler"] < loss[p["ebno_db"]], (p["ebno_db"], p["bler"], loss[p["ebno_db"]])


def _check_cliff(cliff: dict) -> None:
    """Cliff below the estimate, leveling above it."""
    est, true = cliff["estimated_snr_db"], cliff["true_snr_db"]
    se = cliff["fixed_mcs"]["spectral_efficiency"]
    below = true.index(est - 2.0)
    above = true.index(est + 3.0)
    assert cliff["fixed_bler"][below] > 0.8
    assert cliff["genie_goodput"][below] > 0.5 * se > cliff["fixed_goodput"][below]
    assert cliff["fixed_goodput"][above] == pytest.approx(se, rel=0.05)
    assert cliff["genie_goodput"][above] > 1.2 * cliff["fixed_goodput"][above]


@pytest.mark.parametrize(("option", "message"), [
    (["--modulations", "32qam"], "unknown modulation"),
    (["--coded-links", "qpsk-mars"], "unknown coded link"),
    (["--sscc-esno", "1,loud"], "sscc-esno"),
    (["--sscc-chunk", "8"], "sscc-chunk"),
    (["--text-ew", "1,loud"], "text-ew"),
    (["--text-sentences", "1"], "text-sentences"),
    (["--resilient-trials", "0"], "resilient-trials"),
])
def test_demo_rejects_bad_options(tmp_path: Path, option: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "genjscc.cli", "demo", "--out",
                             str(tmp_path / "r"), *option],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()  # refused before any work


LIFETIME_SCRIPT = """
from genjscc.demo.link import run_point
for i in range(30):  # each call builds, runs and drops a flowgraph with 3 Python blocks
    run_point("qpsk", 6.0, medium="pdu", num_packets=20, seed=i)
print("survived")
"""


def test_flowgraphs_built_in_functions_do_not_crash() -> None:
    """Python blocks freed right after tb.wait() used to SIGSEGV (gnuradio#3435)."""
    result = subprocess.run([sys.executable, "-c", LIFETIME_SCRIPT], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "survived" in result.stdout


def _check_jscc(jscc: dict) -> None:
    """Both schemes at every SNR; the separation chain loses the image below its estimate."""
    exact, mismatch = jscc["exact"], jscc["mismatch"]
    assert {p["scheme"] for p in exact} == {"jscc", "separation-heif"}
    for p in exact + mismatch:
        assert p["ratio"] == "1/6" and p["images"] == 1 and 0 < p["ms_ssim"] <= 1
    far_below = [p for p in mismatch
                 if p["scheme"] != "jscc" and p["snr_db"] <= p["estimated_snr_db"] - 2]
    assert far_below and all(p["failures"] == 1 for p in far_below)
    jscc_mm = sorted((p for p in mismatch if p["scheme"] == "jscc"), key=lambda p: p["snr_db"])
    assert jscc_mm[-1]["psnr_db"] > jscc_mm[0]["psnr_db"]  # JSCC improves with the SNR
