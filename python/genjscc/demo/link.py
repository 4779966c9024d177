"""One point of the demo's link sweeps: CRC-checked QAM packets through a GNU Radio flowgraph.

Two media, both real GNU Radio flowgraphs (our blocks are marked *)::

    "ofdm": payload+CRC24A bytes -> *qam_mapper -> *ofdm_qam_tx -> channels.channel_model (AWGN)
                                 -> *ofdm_qam_rx -> *soft_demapper -> LLR PDUs (collected)
    "pdu":  payload+CRC24A bytes -> *qam_mapper -> *pdu_channel (AWGN, ideal sync and CSI)
                                 -> *soft_demapper -> LLR PDUs (collected)

The SNR axis: payload carriers have unit average energy and gr-digital's FFTs are unnormalized,
so after the receiver's FFT and equalizer the AWGN part of the noise on a payload symbol is
``noise_voltage**2 / fft_len``; hence ``Es/N0 = fft_len / noise_voltage**2`` on payload carriers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pmt
import torch

from genjscc.blocks.ofdm import MAX_PAYLOAD_SYMBOLS
from genjscc.core.channel import esno_to_ebno_db
from genjscc.core.fec.crc import CRC
from genjscc.core.mapping import constellation
from genjscc.demo.report import LinkPoint
from gnuradio import blocks, channels, genjscc, gr

FFT_LEN = 64
TAIL_PACKETS = 4  # the receiver holds the last frame until more samples arrive
_KEY_PACKET_NUM = pmt.intern("packet_num")
_KEY_NOISE_VAR = pmt.intern("noise_var")
_CRC = CRC("24A")


def noise_voltage_for_esno(esno_db: float, fft_len: int = FFT_LEN) -> float:
    """channel_model noise voltage giving ``esno_db`` on the payload carriers."""
    return math.sqrt(fft_len / 10.0 ** (esno_db / 10.0))


def make_packets(num: int, payload_bytes: int, seed: int) -> list[np.ndarray]:
    """Random payloads with a CRC-24A attached (``payload_bytes`` includes the 3 CRC bytes)."""
    rng = np.random.default_rng(seed)
    info = rng.integers(0, 2, (num, 8 * (payload_bytes - 3)), dtype=np.uint8)
    coded = _CRC.attach(torch.from_numpy(info)).numpy()
    return [np.packbits(row) for row in coded]


def _collect(sink: blocks.message_debug, expect: int, timeout_s: float) -> list:
    """Wait until ``expect`` messages arrived, or nothing new came for a while."""
    deadline, last_count, last_change = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = sink.num_messages()
        if count >= expect:
            break
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > 3.0:
            break  # the rest was lost (no sync at low SNR)
        time.sleep(0.02)
    return [sink.get_message(i) for i in range(sink.num_messages())]


def _wire_ofdm(tb: gr.top_block, modulation: str, esno_db: float, seed: int, mapper, demapper):
    tx = genjscc.ofdm_qam_tx(modulation, fft_len=FFT_LEN)
    channel = channels.channel_model(noise_voltage=noise_voltage_for_esno(esno_db),
                                     block_tags=True, noise_seed=seed + 1)
    rx = genjscc.ofdm_qam_rx(modulation, fft_len=FFT_LEN)
    tb.msg_connect(mapper, "out", tx, "in")
    tb.connect(tx, channel, rx)
    tb.msg_connect(rx, "out", demapper, "in")


def _wire_pdu(tb: gr.top_block, modulation: str, esno_db: float, seed: int, mapper, demapper):
    channel = genjscc.pdu_channel(model="awgn", esno_db=esno_db, seed=seed + 1)
    tb.msg_connect(mapper, "out", channel, "in")
    tb.msg_connect(channel, "out", demapper, "in")


MEDIA = {"ofdm": _wire_ofdm, "pdu": _wire_pdu}


def run_point(modulation: str, esno_db: float, medium: str = "ofdm", num_packets: int = 200,
              payload_bytes: int = 96, seed: int = 0, timeout_s: float = 120.0) -> LinkPoint:
    """Send ``num_packets`` packets at ``esno_db`` over ``medium`` and count what comes back."""
    const = constellation(modulation)
    if (8 * payload_bytes) % const.bits_per_symbol:
        raise ValueError(f"{payload_bytes} bytes do not fill whole {modulation} symbols")
    if medium not in MEDIA:
        raise ValueError(f"medium must be one of {sorted(MEDIA)}, got {medium!r}")
    packets = make_packets(num_packets + TAIL_PACKETS, payload_bytes, seed)
    tb = gr.top_block(f"genjscc demo {medium} link")
    mapper = genjscc.qam_mapper(modulation)
    demapper = genjscc.soft_demapper(modulation)
    sink = blocks.message_debug()
    MEDIA[medium](tb, modulation, esno_db, seed, mapper, demapper)
    tb.msg_connect(demapper, "out", sink, "store")
    tb.start()
    try:
        for packet in packets:
            mapper.to_basic_block()._post(pmt.intern("in"),
                                          pmt.cons(pmt.make_dict(), pmt.init_u8vector(
                                              len(packet), packet.tolist())))
        messages = _collect(sink, num_packets, timeout_s)
    finally:
        tb.stop()
        tb.wait()
    return _score(modulation, esno_db, packets[:num_packets], messages)


def _score(modulation: str, esno_db: float, packets: list[np.ndarray], messages: list) -> LinkPoint:
    bps = constellation(modulation).bits_per_symbol
    received = crc_ok = bits = errors = 0
    seen: set[int] = set()
    noise_vars: list[float] = []
    for index, msg in enumerate(messages):
        # OFDM frames carry their number in the header; PDU channels keep the order.
        number = pmt.to_long(pmt.dict_ref(pmt.car(msg), _KEY_PACKET_NUM, pmt.from_long(index)))
        llr = np.asarray(pmt.f32vector_elements(pmt.cdr(msg)))
        if not 0 <= number < len(packets) or number in seen:
            continue  # tail padding or a duplicate
        sent = np.unpackbits(packets[number])
        if llr.size != sent.size:
            continue  # a header that decoded to a wrong length: the packet is lost
        seen.add(number)
        noise_var = pmt.dict_ref(pmt.car(msg), _KEY_NOISE_VAR, pmt.PMT_NIL)
        if pmt.is_real(noise_var):
            noise_vars.append(pmt.to_double(noise_var))
        hard = (llr < 0).astype(np.uint8)
        received += 1
        bits += sent.size
        errors += int(np.count_nonzero(hard != sent))
        crc_ok += bool(_CRC.check(torch.from_numpy(hard)))
    return LinkPoint(modulation=modulation, bits_per_symbol=bps, esno_db=esno_db,
                     ebno_db=float(esno_to_ebno_db(esno_db, bps)), packets_sent=len(packets),
                     packets_received=received, packets_crc_ok=crc_ok, bits_compared=bits,
                     bit_errors=errors,
                     esno_rx_db=float(-10 * np.log10(np.median(noise_vars))) if noise_vars
                     else float("nan"))


# ------------------------------------------------------------------------- coded link (LDPC)

_KEY_CRC_OK = pmt.intern("crc_ok")
_KEY_ITERATIONS = pmt.intern("iterations")


@dataclass
class CodedLinkPoint(LinkPoint):
    """A :class:`LinkPoint` of a CRC + LDPC coded link (:func:`run_coded_point`).

    ``packets_received``: decoded PDUs that came out of the decoder; ``packets_crc_ok``: those
    with a good CRC and the sent payload (so ``bler = 1 - delivery`` counts lost packets too);
    ``bits_compared``/``bit_errors``: decoded payload bits of the received packets. ``ebno_db``
    is per payload bit (``code_rate`` = payload bits / transmitted code bits, CRC and padding
    counted as overhead). ``channel_*``: hard decisions of the LLRs before decoding.
    """

    code: str = ""
    decoder: str = ""
    code_rate: float = float("nan")
    codewords_per_packet: int = 0
    channel_bits_compared: int = 0
    channel_bit_errors: int = 0
    mean_iterations: float = float("nan")

    @property
    def bler(self) -> float:
        """Packet (transport block) error rate: not delivered with a good CRC, lost included."""
        return 1.0 - self.delivery if self.packets_sent else float("nan")

    @property
    def channel_ber(self) -> float:
        """Raw BER of the code bits before decoding."""
        if not self.channel_bits_compared:
            return float("nan")
        return self.channel_bit_errors / self.channel_bits_compared


def run_coded_point(modulation: str, esno_db: float, medium: str = "pdu",
                    code: str = "5gnr:bg2:k=512:e=1024", crc: str = "24A", decoder: str = "bp",
                    num_iters: int = 50, num_packets: int = 100, payload_bytes: int | None = None,
                    seed: int = 0, timeout_s: float = 120.0) -> CodedLinkPoint:
    """Send ``num_packets`` random payloads through a CRC + LDPC coded GNU Radio link.

    Flowgraph: ``ldpc_encoder -> qam_mapper(unpacked) -> medium -> soft_demapper ->
    ldpc_decoder`` with ``medium`` ``"pdu"`` (``pdu_channel`` AWGN, ideal sync and CSI) or
    ``"ofdm"`` (``ofdm_qam_tx -> channels.channel_model -> ofdm_qam_rx``; its Es/N0 is the
    module docstring's, and OFDM sync needs about 12 dB). ``esno_db`` is per channel symbol
    (Es = 1). ``payload_bytes`` defaults to one codeword without padding,
    ``(k - crc_length) // 8``; ``code``, ``crc``, ``decoder`` and ``num_iters`` are the
    ``ldpc_encoder``/``ldpc_decoder`` parameters.
    """
    const = constellation(modulation)
    if medium not in MEDIA:
        raise ValueError(f"medium must be one of {sorted(MEDIA)}, got {medium!r}")
    encoder = genjscc.ldpc_encoder(code, crc=crc)
    k, e, crc_len = encoder.code.k, encoder.code.e, encoder.crc_length
    payload_bytes = (k - crc_len) // 8 if payload_bytes is None else int(payload_bytes)
    if payload_bytes < 1:
        raise ValueError(f"payload_bytes must be >= 1, got {payload_bytes}")
    num_cw = math.ceil((8 * payload_bytes + crc_len) / k)
    num_symbols, rest = divmod(num_cw * e, const.bits_per_symbol)
    if rest:
        raise ValueError(f"{num_cw} codewords of {e} bits do not fill whole {modulation} symbols")
    if medium == "ofdm" and num_symbols > MAX_PAYLOAD_SYMBOLS:
        raise ValueError(f"a packet needs {num_symbols} symbols, more than one OFDM frame "
                         f"carries ({MAX_PAYLOAD_SYMBOLS}); lower payload_bytes")
    rng = np.random.default_rng(seed)
    tail = TAIL_PACKETS if medium == "ofdm" else 0
    payloads = [rng.integers(0, 256, payload_bytes, dtype=np.uint8)
                for _ in range(num_packets + tail)]
    ldpc_dec = genjscc.ldpc_decoder(code, decoder=decoder, num_iters=num_iters, crc=crc)
    decoded, llrs, coded = _run_coded_graph(modulation, esno_db, medium, seed, encoder, ldpc_dec,
                                            payloads, num_packets, timeout_s)
    code_rate = 8 * payload_bytes / (num_cw * e)
    point = CodedLinkPoint(
        modulation=modulation, bits_per_symbol=const.bits_per_symbol, esno_db=esno_db,
        ebno_db=float(esno_to_ebno_db(esno_db, const.bits_per_symbol, code_rate)),
        packets_sent=num_packets, packets_received=0, packets_crc_ok=0, bits_compared=0,
        bit_errors=0, code=encoder.code.name, decoder=decoder, code_rate=code_rate,
        codewords_per_packet=num_cw)
    _score_decoded(point, decoded, payloads[:num_packets])
    _score_channel(point, llrs, coded[:num_packets])
    return point


def packet_payload_bytes(code: str = "5gnr:bg2:k=512:e=1024", crc: str = "24A") -> int:
    """Payload bytes that fill one codeword of ``code`` with the ``crc`` appended."""
    from genjscc.core.fec.codes import get_code

    return (get_code(code).k - CRC(crc).length) // 8


def deliver_packets(payloads: list[bytes], modulation: str, esno_db: float,
                    code: str = "5gnr:bg2:k=512:e=1024", crc: str = "24A",
                    num_iters: int = 50, seed: int = 0, timeout_s: float = 120.0
                    ) -> tuple[list[bytes | None], int]:
    """Send given payloads through the coded PDU link of :func:`run_coded_point` (BP decoder).

    Every payload must be one codeword's worth, :func:`packet_payload_bytes` (pad the last
    one). Returns each payload as received when its CRC checked and it equals what was sent
    in length, else ``None`` (lost), and the channel symbols spent on all of them.
    """
    const = constellation(modulation)
    encoder = genjscc.ldpc_encoder(code, crc=crc)
    size = packet_payload_bytes(code, crc)
    if any(len(p) != size for p in payloads):
        raise ValueError(f"every payload must be {size} bytes (one {encoder.code.name} codeword "
                         "with its CRC)")
    ldpc_dec = genjscc.ldpc_decoder(code, decoder="bp", num_iters=num_iters, crc=crc)
    arrays = [np.frombuffer(p, dtype=np.uint8).copy() for p in payloads]
    decoded, _, _ = _run_coded_graph(modulation, esno_db, "pdu", seed, encoder, ldpc_dec,
                                     arrays, len(arrays), timeout_s)
    received: list[bytes | None] = [None] * len(arrays)
    for index, msg in enumerate(decoded):
        number = _packet_number(msg, index)
        data = bytes(pmt.u8vector_elements(pmt.cdr(msg)))
        crc_ok = pmt.to_bool(pmt.dict_ref(pmt.car(msg), _KEY_CRC_OK, pmt.PMT_F))
        if 0 <= number < len(arrays) and crc_ok and len(data) >= size:
            received[number] = data[:size]
    return received, len(arrays) * encoder.code.e // const.bits_per_symbol


def _run_coded_graph(modulation: str, esno_db: float, medium: str, seed: int, encoder,
                     ldpc_dec, payloads: list[np.ndarray], expect: int, timeout_s: float):
    """Run the coded flowgraph; return the decoder's, the demapper's and the encoder's PDUs."""
    tb = gr.top_block(f"genjscc demo coded {medium} link")
    mapper = genjscc.qam_mapper(modulation, input_format="unpacked")
    demapper = genjscc.soft_demapper(modulation)
    sink, llr_sink, coded_sink = (blocks.message_debug() for _ in range(3))
    tb.msg_connect(encoder, "out", mapper, "in")
    tb.msg_connect(encoder, "out", coded_sink, "store")
    MEDIA[medium](tb, modulation, esno_db, seed, mapper, demapper)
    tb.msg_connect(demapper, "out", ldpc_dec, "in")
    tb.msg_connect(demapper, "out", llr_sink, "store")
    tb.msg_connect(ldpc_dec, "out", sink, "store")
    tb.start()
    try:
        for payload in payloads:
            encoder.to_basic_block()._post(pmt.intern("in"),
                                           pmt.cons(pmt.make_dict(), pmt.to_pmt(payload)))
        _wait_decoded(sink, llr_sink, ldpc_dec, expect, timeout_s)
    finally:
        tb.stop()
        tb.wait()
    decoded = [sink.get_message(i) for i in range(sink.num_messages())]
    llrs = [llr_sink.get_message(i) for i in range(llr_sink.num_messages())]
    coded = [np.asarray(pmt.u8vector_elements(pmt.cdr(coded_sink.get_message(i))), np.uint8)
             for i in range(coded_sink.num_messages())]
    return decoded, llrs, coded


def _wait_decoded(sink, llr_sink, ldpc_dec, expect: int, timeout_s: float) -> None:
    """Wait for ``expect`` decoded PDUs, or until the decoder has caught up with the demapper
    and no new frame came for 3 s (the rest was lost), or ``timeout_s``."""
    deadline, last, last_change = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline and sink.num_messages() < expect:
        state = (sink.num_messages(), llr_sink.num_messages())
        caught_up = ldpc_dec.num_processed() + ldpc_dec.num_errors() >= state[1]
        if state != last:
            last, last_change = state, time.monotonic()
        elif caught_up and time.monotonic() - last_change > 3.0:
            break
        time.sleep(0.02)


def _packet_number(msg, index: int) -> int:
    # OFDM frames carry their number in the header; PDU channels keep the order.
    return pmt.to_long(pmt.dict_ref(pmt.car(msg), _KEY_PACKET_NUM, pmt.from_long(index)))


def _score_decoded(point: CodedLinkPoint, messages: list, payloads: list[np.ndarray]) -> None:
    seen: set[int] = set()
    iterations = []
    for index, msg in enumerate(messages):
        number = _packet_number(msg, index)
        data = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), dtype=np.uint8)
        if not 0 <= number < len(payloads) or number in seen or data.size < payloads[0].size:
            continue  # tail padding, a duplicate, or a header decoded to a wrong length
        seen.add(number)
        sent = payloads[number]
        got = data[: sent.size]  # without metadata (OFDM) any zero padding comes along
        meta = pmt.car(msg)
        point.packets_received += 1
        point.bits_compared += 8 * sent.size
        point.bit_errors += int(np.count_nonzero(np.unpackbits(got) != np.unpackbits(sent)))
        crc_ok = pmt.to_bool(pmt.dict_ref(meta, _KEY_CRC_OK, pmt.PMT_F))
        point.packets_crc_ok += bool(crc_ok and np.array_equal(got, sent))
        iterations.append(pmt.to_long(pmt.dict_ref(meta, _KEY_ITERATIONS, pmt.from_long(-1))))
    if iterations:
        point.mean_iterations = float(np.mean(iterations))


def _score_channel(point: CodedLinkPoint, messages: list, coded: list[np.ndarray]) -> None:
    noise_vars = []
    for index, msg in enumerate(messages):
        number = _packet_number(msg, index)
        llr = np.asarray(pmt.f32vector_elements(pmt.cdr(msg)))
        if not 0 <= number < len(coded) or llr.size != coded[number].size:
            continue
        point.channel_bits_compared += llr.size
        point.channel_bit_errors += int(np.count_nonzero((llr < 0) != coded[number]))
        noise_var = pmt.dict_ref(pmt.car(msg), _KEY_NOISE_VAR, pmt.PMT_NIL)
        if pmt.is_real(noise_var):
            noise_vars.append(pmt.to_double(noise_var))
    if noise_vars:
        point.esno_rx_db = float(-10 * np.log10(np.median(noise_vars)))
