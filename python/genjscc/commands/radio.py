"""Send files over the burst OFDM PHY: a transmitter, a channel emulator and a receiver.

The virtual radio is three processes joined by ZeroMQ PUSH/PULL sample streams (raw complex64,
no tags): `send` binds its radio address, `channel` pulls from it and binds its own, `receive`
pulls from that. With `--radio uhd:ARGS` the same TX and RX flowgraphs use a USRP instead.

Files (any bytes; --compress lm codes them with the LM first) are cut into blocks, sent as
fountain-coded packets (no return channel: any K+few packets rebuild a K-block file; --repeat
sends fresh repair packets for ever) with a file id, index and CRC-32, each packet one LDPC
code word in one frame. The receiver writes each file under its original name once complete
and reports the missing pieces of the others. With --jscc the files are images, sent as analog
Deep JSCC symbols. SNR (--snr) is Es/N0 per data subcarrier symbol. See docs/radio.md.

actions:
  send      FILE... -> frames on --radio
  channel   --from ADDR --to ADDR: AWGN, CFO, SRO, multipath, phase noise (a GNU Radio
            flowgraph of gr-channels / gr-filter / gr-analog parts: blocks.channel_emulator)
  receive   --radio ADDR --out DIR: frames -> files
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import queue
import signal
import sys
import time
from pathlib import Path

from genjscc.errors import GenjsccError

EPILOG = """\
examples:
  genjscc radio receive --radio zmq:tcp://127.0.0.1:5601 --out rx/ --idle-timeout 20 --json &
  genjscc radio channel --from tcp://127.0.0.1:5600 --to tcp://127.0.0.1:5601 --snr 5 \\
      --cfo 0.3 --sro-ppm 20 --multipath 3tap &
  genjscc radio send notes.txt --radio zmq:tcp://127.0.0.1:5600 --rate 1e6
  genjscc radio send notes.txt --mcs 12        16-QAM, rate 0.60 (MCS table 1)
  genjscc radio send photo.jpg --jscc --jscc-snr 0    an image as analog Deep JSCC symbols
  genjscc radio send photo.jpg --radio uhd:type=b200 --freq 2.45e9 --gain 60
"""

PACKET_BLOCK_LEN = 460  # payload bytes per packet: 477-byte packets fit one BG2 code block
# An image's name record: one 477-byte packet and one repair, rate 1/3 on QPSK (121 OFDM
# symbols each; decodable near -1 dB, below the 0 dB where JSCC images are still usable).
NAME_CODE_RATE = 1 / 3
NAME_REPAIR_PACKETS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="radio_action", metavar="ACTION")

    p = sub.add_parser("send", help="send files as burst OFDM frames")
    p.add_argument("files", nargs="+", metavar="FILE")
    _radio_args(p, "zmq:tcp://127.0.0.1:5600")
    p.add_argument("--modulation", default="qpsk",
                   help="bpsk, qpsk, 16qam, 64qam or 256qam (default: %(default)s)")
    p.add_argument("--code-rate", type=float, default=0.5,
                   help="5G NR LDPC code rate of each packet (default: %(default)s)")
    p.add_argument("--mcs", type=int, default=None, metavar="N",
                   help="TS 38.214 MCS index (sets --modulation and --code-rate; see "
                        "`genjscc amc table`)")
    p.add_argument("--mcs-table", type=int, default=1, help="MCS index table, 1 or 2")
    p.add_argument("--overhead", type=float, default=0.25,
                   help="repair packets per source packet on one pass (default: %(default)s)")
    p.add_argument("--repeat", action="store_true",
                   help="keep sending fresh repair packets until interrupted")
    p.add_argument("--compress", choices=("none", "lm"), default="none",
                   help="LM-compress each file first (default: %(default)s)")
    _jscc_args(p)
    p.add_argument("--jscc-snr", type=float, default=5.0, metavar="DB",
                   help="SNR the Deep JSCC encoder adapts to (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON summary per file")

    p = sub.add_parser("channel", help="emulate a channel between two ZeroMQ streams")
    p.add_argument("--from", dest="source", default="tcp://127.0.0.1:5600",
                   help="address of the transmitter's stream (default: %(default)s)")
    p.add_argument("--to", dest="sink", default="tcp://127.0.0.1:5601",
                   help="address to serve the receiver's stream on (default: %(default)s)")
    p.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="Es/N0 per data subcarrier symbol in dB (default: no noise)")
    p.add_argument("--cfo", type=float, default=0.0, metavar="SUBCARRIERS")
    p.add_argument("--sro-ppm", type=float, default=0.0)
    p.add_argument("--multipath", default="none",
                   help="none, 3tap, tdl-a, tdl-b, tdl-c or comma-separated complex taps")
    p.add_argument("--delay-spread", type=float, default=4.0,
                   help="TDL delay spread in samples (default: %(default)s)")
    p.add_argument("--doppler", type=float, default=0.0,
                   help="TDL maximum Doppler, cycles per sample (default: static)")
    p.add_argument("--phase-noise", type=float, default=0.0,
                   help="Wiener phase noise step, radians per sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print counters as JSON at exit")

    p = sub.add_parser("receive", help="receive files")
    _radio_args(p, "zmq:tcp://127.0.0.1:5601")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for received files")
    p.add_argument("--idle-timeout", type=float, default=30.0, metavar="S",
                   help="stop after S seconds without a new packet (default: %(default)s)")
    p.add_argument("--count", type=int, default=0,
                   help="stop after this many complete files or images (default: 0 = no limit)")
    _jscc_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON summary per file")


def _jscc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jscc", action="store_true",
                   help="send: the files are images, sent as analog Deep JSCC symbols; "
                        "receive: accepted for symmetry (analog frames are always decoded)")
    p.add_argument("--jscc-ratio", default="1/6",
                   help="Deep JSCC bandwidth ratio (1/6, 1/12, 1/24); both ends must agree "
                        "(default: %(default)s)")


def _radio_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--radio", default=default,
                   help="zmq:tcp://HOST:PORT or uhd:DEVICE-ARGS (default: %(default)s)")
    p.add_argument("--rate", type=float, default=1e6, help="sample rate (default: 1e6)")
    p.add_argument("--freq", type=float, default=2.45e9, help="USRP centre frequency")
    p.add_argument("--gain", type=float, default=40.0, help="USRP gain, dB")
    p.add_argument("--antenna", default="", help="USRP antenna (default: the device's)")


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "radio_action", None)
    if action == "send":
        return _send(args)
    if action == "channel":
        return _channel(args)
    if action == "receive":
        return _receive(args)
    raise GenjsccError("name an action: genjscc radio send|channel|receive (see --help)")


# -- radio back-ends ----------------------------------------------------------------------------


def parse_radio(spec: str) -> tuple[str, str]:
    """``("zmq", "tcp://HOST:PORT")`` or ``("uhd", "ARGS")`` from a --radio value."""
    kind, _, rest = spec.partition(":")
    if kind == "zmq" and rest.startswith("tcp://"):
        return kind, rest
    if kind == "uhd":
        return kind, rest
    raise GenjsccError(f"--radio {spec!r}: use zmq:tcp://HOST:PORT or uhd:DEVICE-ARGS")


def _radio_sink(args):
    from gnuradio import blocks, gr, uhd, zeromq

    kind, where = parse_radio(args.radio)
    if kind == "zmq":
        return [blocks.throttle(gr.sizeof_gr_complex, args.rate),
                zeromq.push_sink(gr.sizeof_gr_complex, 1, where, 100, False, -1)]
    usrp = uhd.usrp_sink(where, uhd.stream_args(cpu_format="fc32", channels=[0]), "")
    usrp.set_samp_rate(args.rate)
    usrp.set_center_freq(args.freq, 0)
    usrp.set_gain(args.gain, 0)
    if args.antenna:
        usrp.set_antenna(args.antenna, 0)
    return [usrp]


def _radio_source(args):
    from gnuradio import gr, uhd, zeromq

    kind, where = parse_radio(args.radio)
    if kind == "zmq":
        return zeromq.pull_source(gr.sizeof_gr_complex, 1, where, 100, False, -1)
    usrp = uhd.usrp_source(where, uhd.stream_args(cpu_format="fc32", channels=[0]))
    usrp.set_samp_rate(args.rate)
    usrp.set_center_freq(args.freq, 0)
    usrp.set_gain(args.gain, 0)
    if args.antenna:
        usrp.set_antenna(args.antenna, 0)
    return usrp


# -- send ---------------------------------------------------------------------------------------


def _load_files(args) -> list:
    from genjscc.core.link.file_transfer import FileSender

    senders = []
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as error:
            raise GenjsccError(f"cannot read {name}: {error.strerror or error}") from error
        content = data
        if args.compress == "lm":
            from genjscc.core.source.codec import compress, load_model

            content = compress(data, load_model("small"))
        senders.append(FileSender(Path(name).name, content, len(data), args.compress,
                                  PACKET_BLOCK_LEN))
    return senders


def _send(args) -> int:
    import numpy as np
    import pmt

    from genjscc.blocks._pdu import uniform_vector
    from genjscc.blocks.burst_ofdm import burst_ofdm_tx
    from genjscc.core.link.file_transfer import OVERHEAD, PacketCodec
    from genjscc.core.mapping import constellation
    from gnuradio import gr

    if args.mcs is not None:
        from genjscc.core.amc.tables import mcs_entry

        entry = mcs_entry(args.mcs, args.mcs_table)
        args.modulation, args.code_rate = entry.modulation, entry.code_rate
    if args.overhead < 0 or not 0 < args.code_rate < 1:
        raise GenjsccError("need --overhead >= 0 and 0 < --code-rate < 1")
    if args.jscc:
        return _send_images(args)
    const = constellation(args.modulation)
    senders = _load_files(args)
    packet_len = PACKET_BLOCK_LEN + OVERHEAD
    codec = PacketCodec(packet_len, PacketCodec.ofdm_symbols_for(
        packet_len, args.code_rate, const.bits_per_symbol), const.bits_per_symbol)
    kind, _ = parse_radio(args.radio)
    tb = gr.top_block("genjscc radio send")
    tx = burst_ofdm_tx(modulation=const.name, continuous=(kind == "zmq"),
                       burst_tags=(kind == "uhd"))
    chain = [tx, *_radio_sink(args)]
    tb.connect(*chain)
    stop = _stop_flag()
    tb.start()
    sent = {s.file_id: 0 for s in senders}
    try:
        packets = _packet_order(senders, args.overhead, args.repeat)
        while not stop["now"]:
            # LDPC-encode a batch at once: the encoder costs about 2.7 ms for one packet and
            # 0.4 ms each in a batch of 16 (1 Msps needs one 80-symbol frame per 7.4 ms)
            batch = list(itertools.islice(packets, _ENCODE_BATCH))
            if not batch:
                break
            for (s, _), bits in zip(batch, codec.encode_many([p for _, p in batch]),
                                    strict=True):
                while tx.num_queued() >= 8 and not stop["now"]:
                    time.sleep(0.002)
                if stop["now"]:
                    break
                tx.to_basic_block()._post(pmt.intern("in"), pmt.cons(
                    pmt.make_dict(), uniform_vector(np.packbits(bits))))
                sent[s.file_id] += 1
        while tx.num_queued() and not stop["now"]:
            time.sleep(0.01)
        time.sleep(0.2)  # let the last frame's samples leave the radio
    finally:
        tb.stop()
        tb.wait()
    for s in senders:
        summary = {"name": s.name, "bytes": s.size, "sent_bytes": len(s.content),
                   "compression": s.compression, "source_packets": s.num_source,
                   "frames_sent": sent[s.file_id], "file_id": f"{s.file_id:08x}"}
        _report(summary, args.json)
    return 0


_ENCODE_BATCH = 16  # packets LDPC-encoded per encoder call by `radio send`


def _packet_order(senders: list, overhead: float, repeat: bool):
    """``(sender, packet bytes)`` in sending order: packet 0 of every file, then packet 1...;
    each file stops after its source packets plus ``overhead`` of repair packets, or never
    with ``repeat`` (fresh repair packets for ever)."""
    index = 0
    while True:
        for s in senders:
            if index < s.num_source + math.ceil(overhead * s.num_source) or repeat:
                yield s, s.packet(index)
        index += 1
        if not repeat and all(index >= s.num_source + math.ceil(overhead * s.num_source)
                              for s in senders):
            return


def _send_images(args) -> int:
    import pmt

    from genjscc.blocks._pdu import uniform_vector
    from genjscc.blocks.burst_ofdm import burst_ofdm_tx
    from genjscc.core.jscc import load_model, model_name
    from genjscc.core.jscc.images import load_image, to_uint8
    from genjscc.core.link.image_frames import image_frames
    from gnuradio import gr

    model = load_model(model_name(args.jscc_ratio))
    images = []
    for name in args.files:
        try:
            pixels = to_uint8(load_image(name))
        except (OSError, ValueError) as error:
            raise GenjsccError(f"cannot read image {name}: {error}") from error
        images.append((Path(name).name, pixels, *image_frames(pixels, model, args.jscc_snr)))
    kind, _ = parse_radio(args.radio)
    names = _image_name_frames(images)
    tb = gr.top_block("genjscc radio send --jscc")
    tx = burst_ofdm_tx(continuous=(kind == "zmq"), burst_tags=(kind == "uhd"))
    tb.connect(tx, *_radio_sink(args))
    stop = _stop_flag()
    tb.start()
    try:
        passes = 0
        while not stop["now"] and (passes == 0 or args.repeat):
            for (_, _, _, frames), name_frames in zip(images, names, strict=True):
                for frame in [*name_frames, *frames]:
                    while tx.num_queued() >= 8 and not stop["now"]:
                        time.sleep(0.002)
                    tx.to_basic_block()._post(pmt.intern("in"), pmt.cons(
                        pmt.make_dict(), uniform_vector(frame)))
            passes += 1
        while tx.num_queued() and not stop["now"]:
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        tb.stop()
        tb.wait()
    for name, pixels, image_id, frames in images:
        _report({"name": name, "image_id": f"{image_id:08x}", "height": pixels.shape[0],
                 "width": pixels.shape[1], "frames_sent": len(frames) * max(passes, 1),
                 "jscc_snr_db": args.jscc_snr}, args.json)
    return 0


def _image_name_frames(images: list) -> list[list]:
    """Per image, the packed-bit PDUs of its name record: one packet (a FileSender with the
    image id and no content) and NAME_REPAIR_PACKETS repairs (either one restores it),
    LDPC-coded at NAME_CODE_RATE on QPSK so that the name arrives where the analog image is
    usable (near 0 dB)."""
    import numpy as np

    from genjscc.core.link.file_transfer import OVERHEAD, FileSender, PacketCodec

    codec = PacketCodec(PACKET_BLOCK_LEN + OVERHEAD, PacketCodec.ofdm_symbols_for(
        PACKET_BLOCK_LEN + OVERHEAD, NAME_CODE_RATE, 2), 2)
    out = []
    for name, _, image_id, _ in images:
        record = FileSender(name, b"", 0, "none", PACKET_BLOCK_LEN, image_id=image_id)
        out.append([np.packbits(codec.encode(record.packet(i)))
                    for i in range(record.num_source + NAME_REPAIR_PACKETS)])
    return out


# -- channel ------------------------------------------------------------------------------------


def _channel(args) -> int:
    """PULL the transmitter's samples, pass them through :class:`channel_emulator` (gr-channels
    parts), PUSH them to the receiver: the channel process of the virtual radio."""
    from genjscc.blocks.channel_emulator import channel_emulator
    from gnuradio import gr, zeromq

    try:
        channel = channel_emulator(es_n0_db=args.snr, cfo=args.cfo, sro_ppm=args.sro_ppm,
                                   multipath=args.multipath, delay_spread=args.delay_spread,
                                   doppler=args.doppler, phase_noise=args.phase_noise,
                                   seed=args.seed)
    except ValueError as error:
        raise GenjsccError(f"radio channel: {error}") from error
    tb = gr.top_block("genjscc radio channel")
    pull = zeromq.pull_source(gr.sizeof_gr_complex, 1, args.source, 100, False, -1)
    push = zeromq.push_sink(gr.sizeof_gr_complex, 1, args.sink, 100, False, -1)
    tb.connect(pull, channel, push)
    print("radio channel: " + " -> ".join(channel.parts()), file=sys.stderr)
    stop = _stop_flag()
    tb.start()
    try:
        while not stop["now"]:
            time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    counters = {"samples_in": int(pull.nitems_written(0)),
                "samples_out": int(push.nitems_read(0)), "parts": channel.parts()}
    _report({"channel": counters}, args.json)
    return 0


# -- receive ------------------------------------------------------------------------------------


def _receive(args) -> int:
    import torch

    from genjscc.blocks.burst_ofdm import burst_ofdm_rx
    from genjscc.core.link.file_transfer import OVERHEAD, FileAssembler, PacketCodec, parse_packet
    from genjscc.core.mapping import constellation
    from gnuradio import gr

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tb = gr.top_block("genjscc radio receive")
    rx = burst_ofdm_rx()  # 32768-sample passes (the per-pass cost is a few ms)
    pdus: queue.Queue = queue.Queue()
    collector = _PduCollector(pdus)
    tb.connect(_radio_source(args), rx)
    tb.msg_connect(rx, "out", collector, "in")
    assembler = FileAssembler(PACKET_BLOCK_LEN)
    images = _LazyImages(args.jscc_ratio)
    codecs: dict[tuple[str, int], PacketCodec] = {}
    counts = {"frames": 0, "crc_failed": 0, "other_frames": 0}
    per_file: dict[int, int] = {}
    done: list[int] = []
    stop = _stop_flag()
    tb.start()
    last = time.monotonic()
    try:
        while not stop["now"] and time.monotonic() - last < args.idle_timeout:
            if args.count and len(done) >= args.count:
                break
            try:
                meta, symbols = pdus.get(timeout=0.1)
            except queue.Empty:
                continue
            counts["frames"] += 1
            modulation = meta.get("modulation")
            if meta.get("analog"):
                finished = images.add(symbols, meta["noise_var"])
                if finished is not None:
                    last = time.monotonic()
                    done.append(finished)
                    _write_image(images, finished, out_dir, args.json)
                continue
            if modulation is None:
                counts["other_frames"] += 1
                continue
            const = constellation(modulation)
            num_ofdm = symbols.size // 48
            key = (const.name, num_ofdm)
            if key not in codecs:
                try:
                    codecs[key] = PacketCodec(PACKET_BLOCK_LEN + OVERHEAD, num_ofdm,
                                              const.bits_per_symbol)
                except ValueError:
                    counts["other_frames"] += 1
                    continue
            llr = const.demap(torch.from_numpy(symbols), torch.from_numpy(meta["noise_var"]))
            packet = parse_packet(codecs[key].decode(llr))
            if packet is None:
                counts["crc_failed"] += 1
                continue
            last = time.monotonic()
            per_file[packet.file_id] = per_file.get(packet.file_id, 0) + 1
            finished = assembler.add(packet, meta.get("snr_db"))
            if finished is not None and not images.take_name(assembler, finished):
                done.append(finished)
                _write_file(assembler, finished, out_dir, per_file, args.json)
    finally:
        tb.stop()
        tb.wait()
    for file_id in assembler.decoders:
        if file_id not in done and file_id not in images.name_records:
            _report(_summary(assembler, file_id, None, per_file, complete=False), args.json)
    for image_id in images.pending():
        if image_id not in done:
            _write_image(images, image_id, out_dir, args.json)
    counts["image_header_failures"] = images.header_failures()
    _report({"receiver": {**counts, **rx.stats()}}, args.json)
    expected = len(assembler.decoders) - len(images.name_records) + len(images.pending())
    return 0 if expected and len(done) == expected else 1


class _LazyImages:
    """The image collector, with its model loaded when the first analog frame arrives."""

    def __init__(self, ratio: str):
        self.ratio = ratio
        self.collector = None
        self.names: dict[int, str] = {}  # image id -> the sender's file name
        self.name_records: set[int] = set()  # file ids of the name records

    def take_name(self, assembler, file_id: int) -> bool:
        """True if the completed file ``file_id`` is an image's name record (then kept)."""
        try:
            desc, _ = assembler.message(file_id)
            image_id = int(desc["image_id"], 16) if "image_id" in desc else None
        except (ValueError, TypeError):
            return False  # _write_file reports the unreadable description
        if image_id is None:
            return False
        self.name_records.add(file_id)
        name = Path(desc["name"]).name  # base name only, as for files
        if name not in ("", ".", ".."):
            self.names[image_id] = name
        return True

    def add(self, symbols, noise_var):
        if self.collector is None:
            from genjscc.core.jscc import load_model, model_name
            from genjscc.core.link.image_frames import ImageCollector

            self.collector = ImageCollector(load_model(model_name(self.ratio)))
        return self.collector.add(symbols, noise_var)

    def pending(self) -> list[int]:
        return list(self.collector.pending) if self.collector else []

    def header_failures(self) -> int:
        return self.collector.header_failures if self.collector else 0


def _write_image(images: _LazyImages, image_id: int, out_dir: Path, as_json: bool) -> None:
    from PIL import Image

    pixels, snr, missing = images.collector.decode(image_id)
    name = images.names.get(image_id)
    # the reconstruction is a PNG whatever the sender's format; unnamed: its image id
    path = out_dir / (f"{Path(name).stem}.png" if name else f"image_{image_id:08x}.png")
    tmp = path.with_name(f".{path.name}.part")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)
    header = images.collector.pending[image_id].header
    _report({"name": name, "image_id": f"{image_id:08x}", "path": str(path),
             "complete": missing == 0,
             "height": header.height, "width": header.width,
             "frames_decoded": header.num_segments - missing, "frames_missing": missing,
             "mean_snr_db": round(snr, 2)}, as_json)


def _write_file(assembler, file_id: int, out_dir: Path, per_file: dict, as_json: bool) -> None:
    try:
        desc, content = assembler.message(file_id)
    except ValueError as error:  # a forged description: nothing to write
        summary = _summary(assembler, file_id, None, per_file, complete=False)
        _report({**summary, "error": str(error)}, as_json)
        return
    data, problem = content, None
    if desc.get("compression") == "lm":
        data, problem = _lm_restore(content)
    # Base name only, never a path: a sender must not choose where the file lands.
    name = Path(str(desc.get("name", ""))).name
    if name in ("", ".", ".."):
        name = f"{file_id:08x}.bin"
    if problem is not None:  # never a partial file under the original name
        name = f"{name}.lm-damaged.gjz"
        data = content
    path = out_dir / name
    tmp = path.with_name(f".{name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    summary = _summary(assembler, file_id, (desc, data, path), per_file,
                       complete=problem is None)
    if problem is not None:
        summary["error"] = problem
    _report(summary, as_json)


def _lm_restore(container: bytes) -> tuple[bytes, str | None]:
    """The original bytes of an LM container that arrived whole, or (b"", why not): a
    sender's container may name a model this host lacks, or be forged."""
    from genjscc.core.source.codec import decompress, model_for_container
    from genjscc.errors import GenjsccError

    try:
        result = decompress(container, model_for_container(container))
    except GenjsccError as error:
        return b"", f"LM container refused: {error}"
    if not result.ok:
        return b"", f"LM container damaged: {result.summary()}"
    return result.data, None


def _summary(assembler, file_id: int, written, per_file: dict, complete: bool) -> dict:
    dec = assembler.decoders[file_id]
    snr = assembler.snr_db.get(file_id) or []
    top = assembler.max_index.get(file_id, -1)
    out = {
        "file_id": f"{file_id:08x}", "complete": complete,
        "frames_decoded": per_file.get(file_id, 0),
        "frames_missing": max(0, top + 1 - len(dec.received)),
        "source_packets": dec.num_source, "missing_source_packets": len(dec.missing()),
        "mean_snr_db": round(float(sum(snr) / len(snr)), 2) if snr else None,
    }
    if written is not None:
        desc, data, path = written
        out = {"name": desc.get("name"), "bytes": len(data), "path": str(path), **out}
    return out


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        print("genjscc radio: " + ", ".join(f"{k}={v}" for k, v in summary.items()),
              file=sys.stderr, flush=True)


def _stop_flag() -> dict:
    """A flag that SIGTERM / SIGINT set, so that the loops end cleanly (and stop the graph)."""
    flag = {"now": False}

    def handler(signum, frame):
        flag["now"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


class _PduCollector:
    """A message sink that puts (metadata dict, numpy symbols) on a queue."""

    def __new__(cls, out: queue.Queue):
        import numpy as np
        import pmt

        from genjscc.blocks._pdu import keep_alive, vector_array
        from gnuradio import gr

        class collector(gr.basic_block):
            def __init__(self):
                gr.basic_block.__init__(self, "genjscc_radio_collector", None, None)
                keep_alive(self)
                self.message_port_register_in(pmt.intern("in"))
                self.set_msg_handler(pmt.intern("in"), self._handle)

            def _handle(self, msg):
                car = pmt.car(msg)
                noise_var = pmt.dict_ref(car, pmt.intern("noise_var"), pmt.PMT_NIL)
                if pmt.is_uniform_vector(noise_var):
                    car = pmt.dict_delete(car, pmt.intern("noise_var"))
                meta = pmt.to_python(car) or {}
                if pmt.is_uniform_vector(noise_var):
                    meta["noise_var"] = vector_array(noise_var, np.float32)
                out.put((meta, vector_array(pmt.cdr(msg), np.complex64)))

        return collector()
