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

import numpy as np
import pmt
import torch

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
