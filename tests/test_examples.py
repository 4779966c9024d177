"""Every examples/*.grc compiles with grcc and its generated script runs.

The examples are endless simulations: a script still running after MIN_RUN_S seconds, whose
output shows data went through the chain, passes (it is then stopped with SIGTERM, which
GRC's generated scripts handle by stopping the graph); a traceback or an early non-zero exit
fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.flowgraph

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.grc"))
MIN_RUN_S = 4.0
MAX_RUN_S = 40.0
# Text that shows data went through the whole chain, for examples that print it.
EXPECTED_OUTPUT = {
    "burst_ofdm_loopback": "snr_db",
    "coded_ofdm_loopback": "crc_ok . #t",
    "coded_pdu_loopback": "crc_ok . #t",
    "lm_source_loopback": "lm_ok . #t",
    "ecct_vs_bp_loopback": "(decoder . ecct)",
    "pdu_channel_loopback": "noise_var",
    "qam_ofdm_loopback": "noise_var",
    "server_offload_loopback": "(backend . server)",
    "jscc_ofdm_loopback": "missing_segments",
    "text_schemes_loopback": "text_ok . #t",
    "resilient_image_loopback": "missing_segments",
}
# Examples that need hardware: they must compile, but running them needs the device
# (a USRP block fails in its constructor without one, gnuradio-notes.md).
NEEDS_HARDWARE = {
    "jscc_usrp_tx": "needs a USRP (uhd_usrp_sink)",
    "jscc_usrp_rx": "needs a USRP (uhd_usrp_source)",
    "radio_tx_usrp": "needs a USRP (uhd_usrp_sink)",
    "radio_rx_usrp": "needs a USRP (uhd_usrp_source)",
}

# Examples whose neural blocks use an inference server: the test starts `genjscc serve` with
# these models on a free port and passes it to the script as --backend.
SERVED_EXAMPLES = {"server_offload_loopback": "ecct-polar_n64_k32,bp:POLAR_N64_K32"}


@contextlib.contextmanager
def _server_for(name: str):
    """The script's extra arguments; a running server for SERVED_EXAMPLES."""
    if name not in SERVED_EXAMPLES:
        yield []
        return
    from serve_helpers import ServerProcess

    with ServerProcess("--models", SERVED_EXAMPLES[name]) as server:
        yield ["--backend", server.endpoint]


def grc_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "grc"), *filter(None, env.get("GRC_BLOCKS_PATH", "").split(os.pathsep))]
    env["GRC_BLOCKS_PATH"] = os.pathsep.join(paths)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"qam_ofdm_loopback", "pdu_channel_loopback"} <= names


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc (gnuradio-companion) not found")
@pytest.mark.parametrize("grc", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_compiles_and_runs(grc, tmp_path):
    env = grc_env()
    compiled = subprocess.run(
        ["grcc", "-o", str(tmp_path), str(grc)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    scripts = list(tmp_path.glob("*.py"))
    assert len(scripts) == 1, compiled.stdout
    if grc.stem in NEEDS_HARDWARE:
        pytest.skip(f"compiled; not run: {NEEDS_HARDWARE[grc.stem]}")

    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    marker = EXPECTED_OUTPUT.get(grc.stem)
    with _server_for(grc.stem) as script_args, out_path.open("w") as out_f, \
            err_path.open("w") as err_f:
        proc = subprocess.Popen(
            [sys.executable, "-u", str(scripts[0]), *script_args],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
        )
        try:
            still_running = _watch(proc, out_path, marker)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # generated scripts stop the graph on it
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    out, err = out_path.read_text(), err_path.read_text()
    assert "Traceback" not in err, err[-3000:]
    if not still_running:
        assert proc.returncode == 0, err[-3000:]
    if marker is not None:
        assert marker in out, (out[-2000:], err[-2000:])


def _watch(proc: subprocess.Popen, out_path: Path, marker: str | None) -> bool:
    """Let the script run: at least MIN_RUN_S, until ``marker`` shows up in its output (at
    most MAX_RUN_S, for slow starts on a loaded machine). True if it is still running."""
    start = time.monotonic()
    while proc.poll() is None:
        elapsed = time.monotonic() - start
        seen = marker is None or marker in out_path.read_text()
        if (elapsed >= MIN_RUN_S and seen) or elapsed >= MAX_RUN_S:
            return True
        time.sleep(0.2)
    return False

BLOCK_YAMLS = sorted((ROOT / "grc").glob("*.block.yml"))


@pytest.mark.parametrize("path", BLOCK_YAMLS, ids=[p.stem for p in BLOCK_YAMLS])
def test_block_yaml_is_documented_and_importable(path):
    yaml = pytest.importorskip("yaml")
    from gnuradio import genjscc

    spec = yaml.safe_load(path.read_text())
    name = path.name.removesuffix(".block.yml").removeprefix("genjscc_")
    assert spec["id"] == f"genjscc_{name}"
    assert spec["category"].startswith("[genjscc]")
    assert "from gnuradio import genjscc" in spec["templates"]["imports"]
    assert f"genjscc.{name}(" in spec["templates"]["make"]
    assert callable(getattr(genjscc, name))
    for section in ("Input:", "Output:", "Parameters:"):
        assert section in spec["documentation"]
    for callback in spec["templates"].get("callbacks", []):
        setter = callback.split("(")[0]
        assert hasattr(getattr(genjscc, name), setter), callback
    tree = yaml.safe_load((ROOT / "grc" / "genjscc.tree.yml").read_text())
    listed = [b for group in tree["[genjscc]"] for blocks in group.values() for b in blocks]
    assert spec["id"] in listed
