"""The virtual radio: `genjscc radio send | channel | receive` as three processes joined by
ZeroMQ PUSH/PULL sample streams on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
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


def test_files_arrive_exact_over_impaired_virtual_radio(tmp_path):
    """12 kB of random bytes and 3 kB of English, LM-compressed (--compress lm: the random
    bytes go stored, the text through lm-small's range coder), at Es/N0 = 8 dB with CFO 0.3
    subcarrier, 20 ppm and 3 taps: the receiver decompresses them and writes each under its
    name, byte for byte, and says so in JSON."""
    src = tmp_path / "payload.bin"
    src.write_bytes(np.random.default_rng(0).bytes(12_000))
    text = tmp_path / "notes.txt"
    text.write_bytes((REPO / "docs" / "radio.md").read_bytes()[:3000])
    tx_port, rx_port = free_port(), free_port()
    out = tmp_path / "rx"
    rx = genjscc("radio", "receive", "--radio", f"zmq:tcp://127.0.0.1:{rx_port}", "--out",
                 str(out), "--idle-timeout", "90", "--count", "2", "--json")
    chan = genjscc("radio", "channel", "--from", f"tcp://127.0.0.1:{tx_port}", "--to",
                   f"tcp://127.0.0.1:{rx_port}", "--snr", "8", "--cfo", "0.3", "--sro-ppm", "20",
                   "--multipath", "3tap", "--seed", "3", "--json")
    tx = genjscc("radio", "send", str(src), str(text), "--compress", "lm", "--radio",
                 f"zmq:tcp://127.0.0.1:{tx_port}", "--json")
    try:
        rx_out, rx_err = rx.communicate(timeout=150)
    finally:
        for proc in (tx, chan, rx):
            proc.terminate()
        for proc in (tx, chan, rx):
            proc.wait(timeout=10)
    assert rx.returncode == 0, rx_err[-2000:]
    summaries = [json.loads(line) for line in rx_out.splitlines()]
    files = {s["name"]: s for s in summaries if "complete" in s}
    assert set(files) == {"payload.bin", "notes.txt"}, summaries
    assert all(f["complete"] and "error" not in f for f in files.values())
    assert files["payload.bin"]["bytes"] == 12_000 and files["notes.txt"]["bytes"] == 3000
    assert 5.0 < files["payload.bin"]["mean_snr_db"] < 11.0
    assert (out / "payload.bin").read_bytes() == src.read_bytes()
    assert (out / "notes.txt").read_bytes() == text.read_bytes()
    chan_out = chan.stdout.read()
    counters = json.loads(chan_out.splitlines()[-1])["channel"]
    assert counters["samples_in"] > 0


def test_a_damaged_lm_container_is_reported_never_written_as_the_file(tmp_path):
    """A container whose chunk fails its CRC after reassembly (a forged sender): the receiver
    keeps it as NAME.lm-damaged.gjz and reports complete false with the reason."""
    from genjscc.commands.radio import _lm_restore
    from genjscc.core.source import compress, load_model

    blob = bytearray(compress(b"hello radio " * 40, load_model("small"), chunk_size=128,
                              keep_chunks=True))
    blob[-3] ^= 0x10
    data, problem = _lm_restore(bytes(blob))
    assert data == b"" and "damaged" in problem
    data, problem = _lm_restore(b"not a container at all")
    assert data == b"" and "refused" in problem


def test_bad_radio_and_missing_file_say_what_to_do(tmp_path, capsys):
    from genjscc.cli import main

    assert main(["radio", "send", str(tmp_path / "nope.txt"), "--radio", "zmq:tcp://x:1"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["radio", "receive", "--radio", "sdr:whatever", "--out", str(tmp_path)]) == 2
    assert "zmq:tcp://HOST:PORT or uhd:" in capsys.readouterr().err
    assert main(["radio"]) == 2
    assert "send|channel|receive" in capsys.readouterr().err


def _file_stream(name: str, data: bytes, num_packets: int, scale_from: int = 10**9,
                 es_n0_db: float = 12.0):
    """Frames of `genjscc radio send` for one file, as the sample stream (complex64 parts)."""
    import torch

    from genjscc.commands.radio import PACKET_BLOCK_LEN
    from genjscc.core.link.file_transfer import OVERHEAD, FileSender, PacketCodec
    from genjscc.core.mapping import constellation
    from genjscc.core.phy.burst_ofdm import BurstOfdmTx, FrameHeader

    sender = FileSender(name, data, len(data), "none", PACKET_BLOCK_LEN)
    codec = PacketCodec(PACKET_BLOCK_LEN + OVERHEAD, 80, 2)
    tx, qpsk = BurstOfdmTx(), constellation("qpsk")
    parts = []
    for i in range(num_packets):
        bits = torch.from_numpy(codec.encode(sender.packet(i)))
        frame = tx.modulate(qpsk.map(bits).numpy(), FrameHeader(80, "qpsk", False, i))
        parts += [frame * (100.0 if i >= scale_from else 1.0), np.zeros(3000, np.complex64)]
    return sender, parts


def test_receiver_restart_loses_only_the_frames_in_between(tmp_path):
    """A receiver killed (SIGKILL) after the first third of a transfer and a new one started:
    the new one completes the file from the later packets and the repair packets; the frames
    it misses are those the first one took."""
    import zmq

    from genjscc.core.channel.emulator import ChannelEmulator

    data = np.random.default_rng(6).bytes(5500)
    sender, parts = _file_stream("restart.bin", data, 13 + 8)  # description + data: 13 blocks
    assert sender.num_source == 13
    emulator = ChannelEmulator(es_n0_db=12.0, seed=2)
    first = emulator(np.concatenate(parts[: 2 * 5]))  # frames 0..4
    rest = emulator(np.concatenate([*parts[2 * 5 :], np.zeros(60_000, np.complex64)]))
    port = free_port()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(f"tcp://127.0.0.1:{port}")
    args = ("radio", "receive", "--radio", f"zmq:tcp://127.0.0.1:{port}", "--out", str(tmp_path),
            "--idle-timeout", "60", "--count", "1", "--json")
    rx1 = genjscc(*args)
    rx2 = None
    try:
        push.send(first.tobytes())  # PUSH blocks until rx1 has connected
        time.sleep(5)
        rx1.kill()
        rx1.wait(timeout=10)
        rx2 = genjscc(*args)
        raw = rest.tobytes()
        for pos in range(0, len(raw), 32768):
            push.send(raw[pos : pos + 32768])
        out, err = rx2.communicate(timeout=100)
    finally:
        for proc in (rx1, rx2):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        push.close(0)
        ctx.term()
    assert rx2.returncode == 0, err[-2000:]
    summary = next(json.loads(line) for line in out.splitlines() if '"complete"' in line)
    assert (tmp_path / "restart.bin").read_bytes() == data
    # Missing: exactly the 5 frames sent while rx1 ran; nothing lost after the restart.
    assert summary["complete"] and summary["frames_missing"] == 5
    assert not (tmp_path / "restart.bin.part").exists()


def test_receiver_survives_malformed_stream(tmp_path):
    """NaN samples, a burst of zeros and a 40 dB level jump in the sample stream: the
    receiver still writes the file exact and counts the NaNs."""
    import torch
    import zmq

    from genjscc.commands.radio import PACKET_BLOCK_LEN
    from genjscc.core.channel.emulator import ChannelEmulator
    from genjscc.core.link.file_transfer import OVERHEAD, FileSender, PacketCodec
    from genjscc.core.mapping import constellation
    from genjscc.core.phy.burst_ofdm import BurstOfdmTx, FrameHeader

    data = np.random.default_rng(5).bytes(3000)
    sender = FileSender("garbled.bin", data, len(data), "none", PACKET_BLOCK_LEN)
    codec = PacketCodec(PACKET_BLOCK_LEN + OVERHEAD, 80, 2)
    tx, qpsk = BurstOfdmTx(), constellation("qpsk")
    parts = []
    for i in range(sender.num_source + 4):
        bits = torch.from_numpy(codec.encode(sender.packet(i)))
        frame = tx.modulate(qpsk.map(bits).numpy(), FrameHeader(80, "qpsk", False, i))
        parts += [frame * (100.0 if i >= 4 else 1.0), np.zeros(3000, np.complex64)]
    parts.insert(3, np.full(500, np.nan, np.complex64))
    parts.insert(5, np.zeros(50_000, np.complex64))
    parts.append(np.zeros(60_000, np.complex64))
    stream = ChannelEmulator(es_n0_db=12.0, seed=1)(np.concatenate(parts))
    port = free_port()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(f"tcp://127.0.0.1:{port}")
    rx = genjscc("radio", "receive", "--radio", f"zmq:tcp://127.0.0.1:{port}", "--out",
                 str(tmp_path), "--idle-timeout", "60", "--count", "1", "--json")
    try:
        raw = stream.tobytes()
        for pos in range(0, len(raw), 32768):
            push.send(raw[pos : pos + 32768])
        out, err = rx.communicate(timeout=100)
    finally:
        rx.terminate()
        rx.wait(timeout=10)
        push.close(0)
        ctx.term()
    assert rx.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in out.splitlines()]
    assert (tmp_path / "garbled.bin").read_bytes() == data
    counters = lines[-1]["receiver"]
    assert counters["non_finite"] >= 500


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc (gnuradio-companion) not found")
def test_example_flowgraphs_tx_channel_rx_together(tmp_path):
    """examples/radio_{tx,channel,rx}_zmq.grc compiled by grcc and run as three processes on
    free ports: the receiver prints frames with their SNR estimate."""
    env = {**os.environ, "GRC_BLOCKS_PATH": str(REPO / "grc"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")])}
    for name in ("radio_tx_zmq", "radio_channel_zmq", "radio_rx_zmq"):
        subprocess.run(["grcc", "-o", str(tmp_path), str(REPO / "examples" / f"{name}.grc")],
                       check=True, capture_output=True, env=env, timeout=120)
    tx_port, rx_port = free_port(), free_port()

    logs = {name: tmp_path / f"{name}.log" for name in
            ("radio_rx_zmq", "radio_channel_zmq", "radio_tx_zmq")}

    def start(name: str, *args: str) -> subprocess.Popen:
        with logs[name].open("w") as log:
            return subprocess.Popen([sys.executable, "-u", str(tmp_path / f"{name}.py"), *args],
                                    env=env, stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT)

    procs = [start("radio_rx_zmq", "--address", f"tcp://127.0.0.1:{rx_port}"),
             start("radio_channel_zmq", "--source", f"tcp://127.0.0.1:{tx_port}", "--sink",
                   f"tcp://127.0.0.1:{rx_port}", "--es-n0-db", "12"),
             start("radio_tx_zmq", "--address", f"tcp://127.0.0.1:{tx_port}")]
    deadline = time.monotonic() + 90
    try:
        while logs["radio_rx_zmq"].read_text().count("snr_db") < 3:
            assert time.monotonic() < deadline, "no 3 frames in 90 s"
            assert all(p.poll() is None for p in procs), "a flowgraph exited early"
            time.sleep(0.5)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        outputs = [log.read_text() for log in logs.values()]
    assert "Traceback" not in "".join(outputs), "\n".join(o[-1500:] for o in outputs)


def test_jscc_image_over_virtual_radio_at_0_db(tmp_path):
    """`send --jscc`: a 192x128 image as analog Deep JSCC symbols at Es/N0 = 0 dB with CFO
    0.3 subcarrier; the received PNG bears the sent name and is within 1.5 dB PSNR of the
    model over plain AWGN."""
    from PIL import Image

    from genjscc.core.jscc import load_model, model_name
    from genjscc.core.jscc.images import load_image, psnr_db, sample_image_path, to_uint8
    from jscc_helpers import as_float, awgn_psnr_db

    pixels = to_uint8(load_image(sample_image_path()))[:128, :192]
    src = tmp_path / "crop.png"
    Image.fromarray(pixels).save(src)
    tx_port, rx_port = free_port(), free_port()
    out = tmp_path / "rx"
    rx = genjscc("radio", "receive", "--radio", f"zmq:tcp://127.0.0.1:{rx_port}", "--out",
                 str(out), "--idle-timeout", "90", "--count", "1", "--json")
    chan = genjscc("radio", "channel", "--from", f"tcp://127.0.0.1:{tx_port}", "--to",
                   f"tcp://127.0.0.1:{rx_port}", "--snr", "0", "--cfo", "0.3", "--seed", "4")
    tx = genjscc("radio", "send", str(src), "--jscc", "--jscc-snr", "0", "--radio",
                 f"zmq:tcp://127.0.0.1:{tx_port}", "--json")
    try:
        rx_out, rx_err = rx.communicate(timeout=120)
    finally:
        for proc in (tx, chan, rx):
            proc.terminate()
        for proc in (tx, chan, rx):
            proc.wait(timeout=10)
    assert rx.returncode == 0, rx_out[-3000:] + rx_err[-2000:]
    summary = next(json.loads(line) for line in rx_out.splitlines() if '"complete"' in line)
    assert summary["complete"] and (summary["height"], summary["width"]) == (128, 192)
    # the name record (rate 1/3 QPSK, sent before the image) names the reconstruction
    assert summary["name"] == "crop.png" and Path(summary["path"]).name == "crop.png"
    got = np.asarray(Image.open(summary["path"]))
    model = load_model(model_name("1/6"))
    ref = as_float(pixels)
    gap = awgn_psnr_db(model, ref, 0.0) - float(psnr_db(ref, as_float(got)))
    assert gap < 1.5
