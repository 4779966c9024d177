"""`genjscc demo` end to end (small), and the flowgraph-lifetime regression it exposed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.flowgraph


def test_demo_writes_report_with_plots(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "genjscc.cli", "demo", "--out", str(out), "--modulations",
         "qpsk,16qam", "--packets", "40", "--step", "7"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (out / "report.md").read_text()
    for image in ("ber_pdu.png", "delivery_pdu.png", "ber_ofdm.png", "delivery_ofdm.png"):
        assert f"({image})" in report
        assert (out / image).stat().st_size > 10_000
    results = json.loads((out / "results.json").read_text())
    ofdm = results["ofdm"]
    # The highest-SNR OFDM point of each modulation delivers every packet.
    for modulation in ("qpsk", "16qam"):
        best = max((p for p in ofdm if p["modulation"] == modulation), key=lambda p: p["esno_db"])
        assert best["packets_crc_ok"] == best["packets_sent"], best
    # The PDU channel at Eb/N0 = 0 dB is where theory says: QPSK BER 0.0786.
    qpsk0 = next(p for p in results["pdu"] if p["modulation"] == "qpsk" and p["ebno_db"] < 0.1)
    assert abs(qpsk0["bit_errors"] / qpsk0["bits_compared"] - 0.0786) < 0.01


def test_demo_rejects_bad_options() -> None:
    result = subprocess.run([sys.executable, "-m", "genjscc.cli", "demo", "--modulations",
                             "32qam"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown modulation" in result.stderr and "Traceback" not in result.stderr


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
