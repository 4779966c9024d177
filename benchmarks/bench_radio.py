"""Burst OFDM PHY (genjscc.core.phy): detection vs SNR, false alarms, uncoded BER vs theory,
CPU cost of TX and RX per sample. One thread (OMP_NUM_THREADS=1), numpy channel emulator.

    OMP_NUM_THREADS=1 python benchmarks/bench_radio.py [--quick] [--realtime] [--markdown FILE]
        [--json]

--realtime runs only the CPU cost parts: the streaming receiver and the frame builder on
back-to-back frames, TX and RX flowgraphs beside gr-digital's stock OFDM chain, and a file
over the three-process ZeroMQ virtual radio at 1 Msps.

Coded BLER: packets of the radio's size (477 bytes, 5G NR LDPC BG2, rate 0.497, QPSK, 80
OFDM symbols) through the burst PHY, against the same code on the ideal PDU channel (QPSK
symbols + AWGN, exact LLRs with the true N0); the SNR at BLER 10 % is interpolated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from benchlib import DATA, add_common_args, emit, setup_threads, table
from genjscc.core.channel.emulator import ChannelEmulator
from genjscc.core.mapping import constellation
from genjscc.core.phy.burst_ofdm import BurstOfdmConfig, BurstOfdmRx, BurstOfdmTx, FrameHeader
from genjscc.core.phy.stream import StreamReceiver

CFG = BurstOfdmConfig()
QPSK = constellation("qpsk")


def detection(snr_db: float, frames: int, seed: int) -> float:
    """Fraction of preambles found (timing +-1, CFO +-0.1 sc) at an SNR per sample, with
    random CFO in +-3 subcarriers and random fractional timing."""
    rng = np.random.default_rng(seed)
    rx = BurstOfdmRx(CFG)
    frame = BurstOfdmTx(CFG).modulate(np.ones(48), FrameHeader(1))
    length = frame.size + 1000
    std = math.sqrt(CFG.sample_power / 10 ** (snr_db / 10) / 2)
    x = std * (rng.standard_normal((frames, length)) + 1j * rng.standard_normal((frames, length)))
    starts = rng.integers(100, 800, frames)
    cfos, delays = rng.uniform(-3, 3, frames), rng.uniform(0, 1, frames)
    freqs = np.fft.fftfreq(frame.size)
    for i in range(frames):
        shifted = np.fft.ifft(np.fft.fft(frame) * np.exp(-2j * np.pi * freqs * delays[i]))
        n = starts[i] + np.arange(frame.size)
        x[i, n] += shifted * np.exp(2j * np.pi * cfos[i] / CFG.fft_len * n)
    found = 0
    for det in rx.detector.detect(torch.from_numpy(x.astype(np.complex64))):
        cfo = rx.detector.refine_cfo(x[det.row], det.start, det.cfo) * CFG.fft_len
        if abs(det.start - starts[det.row] - delays[det.row]) <= 1 and \
                abs(cfo - cfos[det.row]) < 0.1:
            found += 1
    return found / frames


def false_alarms(samples: int, seed: int) -> tuple[int, float]:
    """Detections on complex white noise, and the detector's seconds per sample."""
    rx = BurstOfdmRx(CFG)
    gen = torch.Generator().manual_seed(seed)
    count, elapsed = 0, 0.0
    block = 1_000_000
    for _ in range(max(1, samples // block)):
        noise = torch.randn(1, block, dtype=torch.complex64, generator=gen)
        t0 = time.process_time()
        count += len(rx.detector.detect(noise))
        elapsed += time.process_time() - t0
    return count, elapsed / max(samples, 1)


def link(es_n0_db: float, frames: int, seed: int, **channel) -> dict:
    """Uncoded QPSK over the emulator through the streaming receiver."""
    rng = np.random.default_rng(seed)
    tx = BurstOfdmTx(CFG)
    num_symbols = 20
    parts, sent = [np.zeros(500, np.complex64)], []
    t_tx = 0.0
    for i in range(frames):
        bits = rng.integers(0, 2, num_symbols * 96).astype(np.uint8)
        t0 = time.process_time()
        parts.append(tx.modulate(QPSK.map(torch.from_numpy(bits)).numpy(),
                                 FrameHeader(num_symbols, "qpsk", False, i)))
        t_tx += time.process_time() - t0
        parts.append(np.zeros(500, np.complex64))
        sent.append(bits)
    clean = np.concatenate(parts)
    y = ChannelEmulator(es_n0_db=es_n0_db, seed=seed, **channel)(clean)
    receiver = StreamReceiver(BurstOfdmRx(CFG), chunk=1 << 15)
    t0 = time.process_time()  # CPU time of this process: the machine is shared
    got = []
    for pos in range(0, y.size, 1 << 15):
        got += receiver.push(y[pos : pos + (1 << 15)])
    got += receiver.push(np.zeros(CFG.frame_len(num_symbols), np.complex64), flush=True)
    t_rx = time.process_time() - t0
    errors = total = 0
    for f in got:
        hard = (f.llr() < 0).numpy()
        errors += int(np.count_nonzero(hard != sent[f.header.counter]))
        total += hard.size
    return {
        "es_n0_db": es_n0_db, "channel": channel or "awgn", "frames_found": len(got),
        "frames": frames, "ber": errors / max(total, 1),
        "ber_theory_awgn": 0.5 * math.erfc(math.sqrt(10 ** (es_n0_db / 10) / 2)),
        "snr_est_db": float(np.mean([f.snr_db for f in got])) if got else None,
        "rx_us_per_sample": 1e6 * t_rx / y.size, "tx_us_per_sample": 1e6 * t_tx / clean.size,
    }


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (GNU Radio runs a thread per block)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_until(tb, done, timeout_s: float = 120.0) -> None:
    tb.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        tb.stop()
        tb.wait()


def flowgraph_cost(frames: int, seed: int) -> dict:
    """CPU-us per sample of TX and RX inside GNU Radio flowgraphs (scheduler, buffers and
    Python gateways included), ours (genjscc burst_ofdm_tx/rx) beside gr-digital's stock
    ofdm_tx/ofdm_rx, both carrying 240-byte QPSK payloads (20 OFDM symbols of 48 data
    carriers) in frames sent back to back, with light noise. The RX side reads the TX side's
    samples from a vector source."""
    import pmt

    from genjscc.blocks.burst_ofdm import burst_ofdm_rx, burst_ofdm_tx
    from gnuradio import blocks, digital, gr
    from gnuradio import pdu as gr_pdu

    rng = np.random.default_rng(seed)
    size = 240
    payloads = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(frames)]

    def noisy(x: np.ndarray, std: float) -> np.ndarray:
        n = std * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) / math.sqrt(2)
        return (x + n).astype(np.complex64)

    out: dict = {}
    # ours, TX: PDUs queued, frames written back to back (no gap), until all are out
    tb = gr.top_block()
    tx = burst_ofdm_tx(continuous=False)
    sink = blocks.vector_sink_c()
    tb.connect(tx, sink)
    for p in payloads:
        tx.to_basic_block()._post(pmt.intern("in"), pmt.cons(pmt.make_dict(), pmt.to_pmt(p)))
    t0 = _cpu_seconds()
    _run_until(tb, lambda: tx.num_frames() >= frames)
    cpu = _cpu_seconds() - t0  # before sink.data(): its Python list costs ~0.1 us an item
    ours = np.asarray(sink.data(), np.complex64)
    out["ours_tx"] = 1e6 * cpu / max(ours.size, 1)
    # ours, RX
    samples = noisy(np.concatenate([ours, np.zeros(CFG.frame_len(20), np.complex64)]), 0.05)
    tb = gr.top_block()
    rx = burst_ofdm_rx()
    store = blocks.message_debug()
    tb.connect(blocks.vector_source_c(samples, False), rx)
    tb.msg_connect(rx, "out", store, "store")
    t0 = _cpu_seconds()
    tb.run()
    rx.flush()
    out["ours_rx"] = 1e6 * (_cpu_seconds() - t0) / samples.size
    out["ours_frames"] = rx.num_frames()
    out["ours_samples_per_frame"] = ours.size / frames
    # gr-digital, TX (rolloff 2: back-to-back frames need shaped edges, tests/test_ofdm.py)
    key = "packet_len"
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_b(np.concatenate(payloads).tolist(), False),
               blocks.stream_to_tagged_stream(gr.sizeof_char, 1, size, key),
               digital.ofdm_tx(packet_length_tag_key=key, bps_payload=2, rolloff=2), sink)
    t0 = _cpu_seconds()
    tb.run()
    cpu = _cpu_seconds() - t0
    theirs = np.asarray(sink.data(), np.complex64)
    out["gr_digital_tx"] = 1e6 * cpu / max(theirs.size, 1)
    # gr-digital, RX (its sync holds the last frame: a few spare frames at the end)
    tail = np.tile(theirs[: theirs.size // frames * 4], 1)
    samples = noisy(np.concatenate([theirs, tail]), 0.05)
    tb = gr.top_block()
    to_pdu = gr_pdu.tagged_stream_to_pdu(gr.types.byte_t, key)
    store = blocks.message_debug()
    tb.connect(blocks.vector_source_c(samples, False),
               digital.ofdm_rx(packet_length_tag_key=key, bps_payload=2), to_pdu)
    tb.msg_connect(to_pdu, "pdus", store, "store")
    t0 = _cpu_seconds()
    tb.run()
    out["gr_digital_rx"] = 1e6 * (_cpu_seconds() - t0) / samples.size
    out["gr_digital_frames"] = min(store.num_messages(), frames)
    out["gr_digital_samples_per_frame"] = theirs.size / frames
    out["frames"] = frames
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process by name (Linux /proc)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def virtual_radio(rate: float, size: int, es_n0_db: float = 10.0, seed: int = 0) -> dict:
    """The three-process virtual radio (`genjscc radio send | channel | receive` over ZeroMQ
    on 127.0.0.1) carrying one random file of ``size`` bytes, the sender throttled to
    ``rate`` samples/s. Times are from the sender's launch (its start-up included); the
    receiver keeps up when it completes the file before the sender has sent its last repair
    packet. Thread CPU of the receiver: its burst OFDM block (PHY) and its main thread (LLRs,
    LDPC decoding, file assembly; Python start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
        Path(tmp, "file.bin").write_bytes(data)
        a, b = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"

        def start(*args: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "genjscc.cli", "radio", *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        rx = start("receive", "--radio", "zmq:" + b, "--out", str(Path(tmp, "out")), "--count",
                   "1", "--json", "--idle-timeout", "20")
        channel = start("channel", "--from", a, "--to", b, "--snr", str(es_n0_db), "--seed",
                        str(seed))
        time.sleep(8.0)  # both are listening by then (start-up about 3 s, more under load)
        t0 = time.monotonic()
        tx = start("send", str(Path(tmp, "file.bin")), "--radio", "zmq:" + a, "--rate",
                   str(rate), "--json")
        done: dict[str, float] = {}
        cpu: dict[str, float] = {}
        threads: dict[str, float] = {}
        while len(done) < 2 and time.monotonic() - t0 < 300:
            for name, proc in (("tx", tx), ("rx", rx)):
                if name in done:
                    continue
                if name == "rx":  # threads end one by one: keep each one's last reading
                    threads.update(_thread_cpu(rx.pid))
                pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    done[name] = time.monotonic() - t0
                    cpu[name] = usage.ru_utime + usage.ru_stime
            time.sleep(0.02)
        for proc in (tx, rx, channel):
            proc.terminate()
        channel.wait()
        rx_lines = [json.loads(line) for line in rx.stdout.read().splitlines()
                    if line.startswith("{")]
        tx_lines = [json.loads(line) for line in tx.stdout.read().splitlines()
                    if line.startswith("{")]
        received = Path(tmp, "out", "file.bin")
        exact = received.exists() and received.read_bytes() == data
    counters = next((x["receiver"] for x in rx_lines if "receiver" in x), {})
    # the receiver's start-up (imports, model-free set-up) and 1 s of idle polling alone
    idle = subprocess.Popen([sys.executable, "-m", "genjscc.cli", "radio", "receive", "--radio",
                             f"zmq:tcp://127.0.0.1:{_free_port()}", "--out", tempfile.gettempdir(),
                             "--idle-timeout", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(idle.pid, 0)
    frames_sent = tx_lines[0]["frames_sent"] if tx_lines else 0
    return {
        "rate": rate, "bytes": size, "es_n0_db": es_n0_db, "exact": exact,
        "frames_sent": frames_sent, "frame_samples": CFG.frame_len(80),
        "tx_done_s": done.get("tx"), "rx_done_s": done.get("rx"),
        "rx_samples": counters.get("samples"), "rx_frames": counters.get("frames"),
        "rx_cpu_s": cpu.get("rx"), "tx_cpu_s": cpu.get("tx"),
        "rx_phy_thread_cpu_s": threads.get("genjscc_burst_o"),
        "rx_main_thread_cpu_s": threads.get("python"),
        "rx_idle_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def jscc_images(paths: list[Path], rate: float, es_n0_db: float = 5.0) -> dict:
    """Images as analog Deep JSCC frames over the three-process virtual radio (`send --jscc`
    throttled to ``rate``, `channel`, `receive --count N`): when each reconstruction was
    written (s after the sender's launch) and when the sender was done; the receiver's rate
    is read off the images it finishes after the sender has stopped (its backlog)."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"

        def start(*args: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "genjscc.cli", "radio", *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        rx = start("receive", "--radio", "zmq:" + b, "--out", str(Path(tmp, "out")), "--count",
                   str(len(paths)), "--json", "--idle-timeout", "20")
        channel = start("channel", "--from", a, "--to", b, "--snr", str(es_n0_db))
        time.sleep(8.0)
        t0 = time.monotonic()
        tx = start("send", *map(str, paths), "--jscc", "--radio", "zmq:" + a, "--rate", str(rate))
        written: list[float] = []
        complete = 0

        def read() -> None:
            nonlocal complete
            for line in rx.stdout:
                if line.startswith("{") and '"path"' in line:
                    written.append(time.monotonic() - t0)
                    complete += bool(json.loads(line).get("complete"))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            tx.wait(timeout=300)
            tx_done = time.monotonic() - t0
            reader.join(timeout=120)
        finally:
            for proc in (tx, rx, channel):
                proc.terminate()
            for proc in (tx, rx, channel):
                proc.wait()
    after = [t for t in written if t > tx_done]
    backlog_rate = (len(after) - 1) / (after[-1] - after[0]) if len(after) > 2 else None
    return {"images": len(paths), "complete": complete, "rate": rate, "es_n0_db": es_n0_db,
            "tx_done_s": tx_done, "written_s": written, "rx_images_per_s": backlog_rate}


def coded_bler(es_n0_db: float, packets: int, seed: int, ideal: bool = False,
               **channel) -> float:
    """Packet error rate of LDPC-coded QPSK packets (CRC-checked) at an Es/N0."""
    from genjscc.core.link.file_transfer import PacketCodec

    codec = PacketCodec(477, 80, 2)
    rng = np.random.default_rng(seed)
    payloads = [rng.bytes(477) for _ in range(packets)]
    symbols = [QPSK.map(torch.from_numpy(codec.encode(p))) for p in payloads]
    errors = 0
    if ideal:
        n0 = 10 ** (-es_n0_db / 10)
        gen = torch.Generator().manual_seed(seed)
        for p, x in zip(payloads, symbols, strict=True):
            y = x + math.sqrt(n0) * torch.randn(x.shape, dtype=torch.complex64, generator=gen)
            errors += codec.decode(QPSK.demap(y, n0)) != p
        return errors / packets
    tx = BurstOfdmTx(CFG)
    parts = [np.zeros(500, np.complex64)]
    for i, x in enumerate(symbols):
        parts += [tx.modulate(x.numpy(), FrameHeader(80, "qpsk", False, i)),
                  np.zeros(200, np.complex64)]
    parts.append(np.zeros(CFG.frame_len(80), np.complex64))
    y = ChannelEmulator(es_n0_db=es_n0_db, seed=seed, **channel)(np.concatenate(parts))
    got = {f.header.counter: f for f in BurstOfdmRx(CFG).receive(y)}
    for i, p in enumerate(payloads):
        errors += i not in got or codec.decode(got[i].llr()) != p
    return errors / packets


def snr_at_bler(snrs: list[float], blers: list[float], target: float = 0.1) -> float | None:
    """Linear interpolation of log10(BLER) over SNR at ``target``; None if not bracketed."""
    for i in range(len(snrs) - 1):
        (s0, b0), (s1, b1) = (snrs[i], blers[i]), (snrs[i + 1], blers[i + 1])
        if b0 >= target > b1:
            l0, l1 = math.log10(max(b0, 1e-4)), math.log10(max(b1, 1e-4))
            return s0 + (math.log10(target) - l0) * (s1 - s0) / (l1 - l0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--frames", type=int, default=200, help="frames per detection point")
    parser.add_argument("--noise-samples", type=int, default=20_000_000)
    parser.add_argument("--packets", type=int, default=100, help="packets per coded point")
    parser.add_argument("--file-bytes", type=int, default=300_000,
                        help="file size sent over the virtual radio (0: skip that part)")
    parser.add_argument("--images", default=str(DATA / "images" / "bsds500" / "test"),
                        help="folder of .jpg images sent as Deep JSCC over the virtual radio")
    parser.add_argument("--num-images", type=int, default=12,
                        help="images sent over the virtual radio (0: skip that part)")
    parser.add_argument("--realtime", action="store_true",
                        help="only the CPU cost parts: links, flowgraphs, virtual radio")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    setup_threads(args.threads)
    if args.quick:
        args.frames, args.noise_samples, args.packets = 20, 1_000_000, 8
        args.file_bytes = min(args.file_bytes, 20_000)
        args.num_images = min(args.num_images, 3)
    link(10.0, 2, 0)  # warm-up: builds the header code and decoders, not timed below
    result: dict = {}
    if not args.realtime:
        result["detection"] = {snr: detection(snr, args.frames, 1)
                               for snr in (-10.0, -9.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0)}
        result["false_alarms"] = dict(zip(("count", "detector_s_per_sample"),
                                          false_alarms(args.noise_samples, 2), strict=True))
    result["links"] = [link(snr, max(4, args.frames // 2), 3) for snr in (6.0, 10.0)] + [
        link(10.0, max(4, args.frames // 2), 4, cfo=0.5, sro_ppm=20.0, multipath="3tap")]
    result["flowgraphs"] = flowgraph_cost(max(20, args.frames // 2), 6)
    if args.file_bytes:
        result["virtual_radio"] = virtual_radio(1e6, args.file_bytes)
    images = sorted(Path(args.images).glob("*.jpg"))[: args.num_images]
    if images:
        result["jscc_images"] = jscc_images(images, 1e6)
    if args.realtime:
        if args.json:
            print(json.dumps(result, indent=1))
        emit(args, _markdown(args, result))
        return
    result["coded"] = {}
    impaired = dict(cfo=0.5, sro_ppm=20.0, multipath="3tap")
    for name, snrs, kwargs in (
            ("ideal PDU channel", [0.0, 0.25, 0.5, 0.75, 1.0, 1.25], dict(ideal=True)),
            ("burst PHY, AWGN", [0.75, 1.0, 1.25, 1.5, 1.75, 2.0], {}),
            ("burst PHY, CFO 0.5 sc + 20 ppm + 3 taps", [2.0, 2.25, 2.5, 2.75, 3.0, 3.25],
             impaired)):
        blers = [coded_bler(snr, args.packets, 5, **kwargs) for snr in snrs]
        result["coded"][name] = {"snr_db": snrs, "bler": blers,
                                 "snr_at_bler_10pct": snr_at_bler(snrs, blers)}
    if args.json:
        print(json.dumps(result, indent=1))
    emit(args, _markdown(args, result))


def _markdown(args, r: dict) -> str:
    out = _markdown_quality(args, r) if "detection" in r else []
    out += ["Uncoded QPSK through the streaming receiver (20 OFDM symbols per frame; CPU time "
            "of one thread):", ""]
    rows = [[str(x["channel"]).replace("'", ""), f"{x['es_n0_db']:g}",
             f"{x['frames_found']}/{x['frames']}", f"{x['ber']:.2e}",
             f"{x['ber_theory_awgn']:.2e}", f"{x['snr_est_db']:.2f}",
             f"{x['rx_us_per_sample']:.2f}", f"{x['tx_us_per_sample']:.3f}"] for x in r["links"]]
    out.append(table(["channel", "Es/N0 (dB)", "frames", "BER", "AWGN theory", "SNR estimate",
                      "RX CPU-us/sample", "TX CPU-us/sample"], rows))
    out += ["", "RX cost counts the whole streaming receiver (detection, estimation, "
            "equalization, per-symbol noise variances; 32768-sample passes) on a stream of "
            "back-to-back frames with short gaps; on noise alone only the detector runs. TX: "
            "building the frames from mapped symbols.", ""]
    fg = r["flowgraphs"]
    out += [f"Inside GNU Radio flowgraphs (CPU time of the process, all threads: scheduler, "
            f"buffers and Python gateways included), {fg['frames']} frames of 240-byte QPSK "
            "payloads (20 OFDM symbols) back to back with light noise, each chain reading "
            "its own transmitter's samples:", ""]
    out.append(table(
        ["chain", "TX CPU-us/sample", "RX CPU-us/sample", "samples per frame", "frames received"],
        [["genjscc burst_ofdm_tx / burst_ofdm_rx", f"{fg['ours_tx']:.2f}", f"{fg['ours_rx']:.2f}",
          f"{fg['ours_samples_per_frame']:.0f}", f"{fg['ours_frames']}/{fg['frames']}"],
         ["gr-digital ofdm_tx / ofdm_rx (stock)", f"{fg['gr_digital_tx']:.2f}",
          f"{fg['gr_digital_rx']:.2f}", f"{fg['gr_digital_samples_per_frame']:.0f}",
          f"{fg['gr_digital_frames']}/{fg['frames']}"]]))
    ratio = fg["ours_samples_per_frame"] / fg["gr_digital_samples_per_frame"]
    out += ["", "Our frames are longer for the same payload (a 512-sample preamble that "
            "detects at -7 dB per sample, 2 training symbols, a coded 4-symbol header): per "
            f"payload bit, our per-sample costs count {ratio:.2f} times."]
    vr = r.get("virtual_radio")
    if vr:
        per = (lambda cpu: f"{1e6 * cpu / vr['rx_samples']:.2f}") if vr["rx_samples"] else str
        out += ["", f"Three-process virtual radio (`genjscc radio send | channel | receive` "
                f"over ZeroMQ on 127.0.0.1, Es/N0 {vr['es_n0_db']:g} dB, 477-byte QPSK packets "
                f"at rate 1/2, 80-symbol frames of {vr['frame_samples']} samples), a "
                f"{vr['bytes']:,}-byte file, sender at {vr['rate'] / 1e6:g} Msps (--rate):", ""]
        out.append(table(["", "value"], [
            ["file arrived exact", "yes" if vr["exact"] else "**no**"],
            ["frames sent", f"{vr['frames_sent']}"],
            ["sender done (s after its launch, start-up included)", f"{vr['tx_done_s']:.1f}"],
            ["receiver completed the file (s after the sender's launch)",
             "n/a" if vr["rx_done_s"] is None else f"{vr['rx_done_s']:.1f}"],
            ["samples the receiver read", f"{vr['rx_samples']:,}" if vr["rx_samples"] else "n/a"],
            ["receiver PHY thread (burst_ofdm_rx): CPU-s (CPU-us/sample)",
             f"{vr['rx_phy_thread_cpu_s']:.2f} ({per(vr['rx_phy_thread_cpu_s'])})"],
            ["receiver main thread (LLRs, LDPC, files; start-up included): CPU-s "
             "(CPU-us/sample)",
             f"{vr['rx_main_thread_cpu_s']:.2f} ({per(vr['rx_main_thread_cpu_s'])})"],
            ["receiver process CPU-s; an idle receiver's (start-up + 1 s)",
             f"{vr['rx_cpu_s']:.2f}; {vr['rx_idle_cpu_s']:.2f}"],
            ["receiver process less the idle one: CPU-us/sample",
             per(vr["rx_cpu_s"] - vr["rx_idle_cpu_s"])],
            ["sender process CPU-s", f"{vr['tx_cpu_s']:.2f}"]]))
    ji = r.get("jscc_images")
    if ji:
        rate = ji["rx_images_per_s"]
        times = ji["written_s"]
        overall = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None
        out += ["", f"Deep JSCC images over the same virtual radio (`send --jscc` of "
                f"{ji['images']} BSDS500 test images of 481x321, ratio 1/6, sender at "
                f"{ji['rate'] / 1e6:g} Msps; `channel --snr {ji['es_n0_db']:g}`): "
                f"{ji['complete']}/{ji['images']} complete; sender done {ji['tx_done_s']:.1f} s "
                "after its launch, images written at "
                + ", ".join(f"{t:.1f}" for t in ji["written_s"]) + " s; the receiver's own "
                "rate (images it finished after the sender had stopped): "
                + ("n/a (it kept up)" if rate is None else f"**{rate:.1f} images/s**")
                + (f"; first to last image {overall:.1f} images/s." if overall else ".")]
    return "\n".join(out)


def _markdown_quality(args, r: dict) -> list[str]:
    out = [f"Detection of {args.frames} preambles per point (timing within 1 sample and CFO "
           "within 0.1 subcarrier; random CFO in +-3 subcarriers, random fractional delay), "
           "SNR per sample:", ""]
    out.append(table(["SNR per sample (dB)", *[f"{s:+g}" for s in r["detection"]]],
                     [["detected", *[f"{100 * p:.1f} %" for p in r["detection"].values()]]]))
    fa = r["false_alarms"]
    out += ["", f"False detections in {args.noise_samples:,} samples of white noise: "
            f"**{fa['count']}** (threshold set for < 1e-10 per sample; detector "
            f"{1e6 * fa['detector_s_per_sample']:.3f} CPU-us per sample).", "",
            f"Coded BLER of 477-byte packets (5G NR LDPC BG2, k = 3816, e = 7680, rate 0.497, "
            f"QPSK, 80 OFDM symbols), {args.packets} packets per point, Es/N0 per data "
            "subcarrier:", ""]
    rows = []
    for name, c in r["coded"].items():
        pts = ", ".join(f"{s:g}: {b:.2f}" for s, b in zip(c["snr_db"], c["bler"], strict=True))
        at = c["snr_at_bler_10pct"]
        rows.append([name, "n/a" if at is None else f"{at:.2f} dB", pts])
    out.append(table(["channel", "Es/N0 at BLER 10 %", "BLER by Es/N0 (dB)"], rows))
    return [*out, ""]


if __name__ == "__main__":
    main()
