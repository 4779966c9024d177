"""The virtual radio: `genjscc radio send | channel | receive` as three processes joined by
ZeroMQ PUSH/PULL sample streams on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.flowgraph


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def genjscc(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "genjscc.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_file_arrives_exact_over_impaired_virtual_radio(tmp_path):
    """12 kB of random bytes at Es/N0 = 8 dB with CFO 0.3 subcarrier, 20 ppm and 3 taps:
    the receiver writes the file under its name, byte for byte, and says so in JSON."""
    src = tmp_path / "payload.bin"
    src.write_bytes(np.random.default_rng(0).bytes(12_000))
    tx_port, rx_port = free_port(), free_port()
    out = tmp_path / "rx"
    rx = genjscc("radio", "receive", "--radio", f"zmq:tcp://127.0.0.1:{rx_port}", "--out",
                 str(out), "--idle-timeout", "40", "--count", "1", "--json")
    chan = genjscc("radio", "channel", "--from", f"tcp://127.0.0.1:{tx_port}", "--to",
                   f"tcp://127.0.0.1:{rx_port}", "--snr", "8", "--cfo", "0.3", "--sro-ppm", "20",
                   "--multipath", "3tap", "--seed", "3", "--json")
    tx = genjscc("radio", "send", str(src), "--radio", f"zmq:tcp://127.0.0.1:{tx_port}",
                 "--json")
    try:
        rx_out, rx_err = rx.communicate(timeout=55)
    finally:
        for proc in (tx, chan, rx):
            proc.terminate()
        for proc in (tx, chan, rx):
            proc.wait(timeout=10)
    assert rx.returncode == 0, rx_err[-2000:]
    summaries = [json.loads(line) for line in rx_out.splitlines()]
    files = [s for s in summaries if "complete" in s]
    assert files and files[0]["complete"] and files[0]["name"] == "payload.bin"
    assert files[0]["bytes"] == 12_000 and 5.0 < files[0]["mean_snr_db"] < 11.0
    assert (out / "payload.bin").read_bytes() == src.read_bytes()
    chan_out = chan.stdout.read()
    counters = json.loads(chan_out.splitlines()[-1])["channel"]
    assert counters["samples_in"] > 0


def test_bad_radio_and_missing_file_say_what_to_do(tmp_path, capsys):
    from genjscc.cli import main

    assert main(["radio", "send", str(tmp_path / "nope.txt"), "--radio", "zmq:tcp://x:1"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["radio", "receive", "--radio", "sdr:whatever", "--out", str(tmp_path)]) == 2
    assert "zmq:tcp://HOST:PORT or uhd:" in capsys.readouterr().err
    assert main(["radio"]) == 2
    assert "send|channel|receive" in capsys.readouterr().err
