"""Packet layer of the radio: fountain erasure code, packets with CRC, LDPC per packet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genjscc.core.link.file_transfer import (
    OVERHEAD,
    FileAssembler,
    FileSender,
    PacketCodec,
    parse_packet,
)
from genjscc.core.link.fountain import FountainDecoder, encode_packet


def test_fountain_recovers_from_any_full_rank_subset():
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (30, 16), dtype=np.uint8)
    dec = FountainDecoder(7, 30, 16)
    # Lose a third of the systematic packets; repair packets fill in.
    order = [i for i in range(30) if i % 3] + list(range(30, 80))
    for i in order:
        dec.add(i, encode_packet(blocks, 7, i))
        if dec.complete:
            break
    assert dec.complete and i < 30 + 10 + 20  # 10 lost, a few extra repair packets
    np.testing.assert_array_equal(dec.decode(), blocks)
    with pytest.raises(ValueError, match="more packets"):
        FountainDecoder(7, 30, 16).decode()


def test_file_packets_crc_and_missing_report():
    data = np.random.default_rng(1).bytes(5000)
    sender = FileSender("dir/../notes.bin", data, len(data), "none", 100)
    assembler = FileAssembler(100)
    wire = sender.packet(0)
    corrupt = bytearray(wire)
    corrupt[20] ^= 1
    assert parse_packet(bytes(corrupt)) is None  # CRC-32 catches it
    for i in range(sender.num_source - 3):
        assert assembler.add(parse_packet(sender.packet(i))) is None
    assert assembler.decoders[sender.file_id].missing() == list(
        range(sender.num_source - 3, sender.num_source))
    done = None
    index = sender.num_source
    while done is None:
        done = assembler.add(parse_packet(sender.packet(index)))
        index += 1
    desc, content = assembler.message(done)
    assert content == data and desc["name"] == "dir/../notes.bin" and desc["size"] == 5000


def test_packet_ldpc_round_trip_and_length_check():
    codec = PacketCodec(477, PacketCodec.ofdm_symbols_for(477, 0.5, 2), 2)
    assert codec.num_ofdm_symbols == 80 and codec.code.k == 8 * 477
    packet = FileSender("a", b"x" * 460, 460, "none", 460 + 0).packet(0)
    assert len(packet) == 460 + OVERHEAD
    bits = codec.encode(packet)
    noise = np.random.default_rng(2).normal(0, 0.8, bits.size)
    llr = torch.from_numpy(((1 - 2 * bits.astype(np.float64) + noise) * 2 / 0.64).astype(
        np.float32))
    assert codec.decode(llr) == packet
    # a batch encodes as its packets one by one; a packet of another length is refused
    others = [FileSender("b", bytes(range(200)) * 5, 1000, "none", 460).packet(i)
              for i in range(3)]
    np.testing.assert_array_equal(codec.encode_many([packet, *others]),
                                  np.stack([codec.encode(p) for p in [packet, *others]]))
    with pytest.raises(ValueError, match="477 bytes"):
        codec.encode_many([packet, packet[:-1]])
    with pytest.raises(ValueError, match="too few"):
        PacketCodec(477, 10, 2)


def test_mcs_packets_over_the_burst_phy():
    """Packets at MCS 12 of table 1 (16-QAM, rate 0.60) through the burst PHY at 16 dB with
    CFO and 3 taps; the receiver rebuilds the code from the header alone."""
    from genjscc.core.amc.tables import mcs_entry
    from genjscc.core.channel.emulator import ChannelEmulator
    from genjscc.core.mapping import constellation
    from genjscc.core.phy.burst_ofdm import BurstOfdmRx, BurstOfdmTx, FrameHeader

    entry = mcs_entry(12, 1)
    const = constellation(entry.modulation)
    num_ofdm = PacketCodec.ofdm_symbols_for(477, entry.code_rate, const.bits_per_symbol)
    codec = PacketCodec(477, num_ofdm, const.bits_per_symbol)
    sender = FileSender("m.bin", bytes(range(256)) * 8, 2048, "none", 460)
    tx = BurstOfdmTx()
    parts = [np.zeros(300, np.complex64)]
    for i in range(4):
        symbols = const.map(torch.from_numpy(codec.encode(sender.packet(i)))).numpy()
        parts += [tx.modulate(symbols, FrameHeader(num_ofdm, const.name, False, i)),
                  np.zeros(300, np.complex64)]
    y = ChannelEmulator(es_n0_db=16.0, cfo=0.4, multipath="3tap", seed=1)(np.concatenate(parts))
    frames = BurstOfdmRx().receive(y)
    assert len(frames) == 4
    for f in frames:
        rebuilt = PacketCodec(477, f.header.num_symbols, const.bits_per_symbol)
        assert parse_packet(rebuilt.decode(f.llr())) is not None


@pytest.mark.parametrize("desc", [b"not json", b'["a list"]', b'{"name": 3, "content_len": 0}',
                                  b'{"name": "x", "content_len": 999999}', b'{"name": "x"}'])
def test_a_forged_description_is_a_value_error_not_a_crash(desc):
    """Packets whose CRCs pass but whose description no FileSender wrote."""
    import struct

    from genjscc.core.link.file_transfer import Packet

    block = np.zeros(100, np.uint8)
    message = struct.pack(">H", len(desc)) + desc
    block[:len(message)] = np.frombuffer(message, np.uint8)
    assembler = FileAssembler(100)
    payload = encode_packet(block[None, :], 5, 0).tobytes()
    done = assembler.add(parse_packet(Packet(5, 0, 1, payload).to_bytes()))
    assert done == 5
    with pytest.raises(ValueError, match="unreadable description"):
        assembler.message(done)


def test_an_image_name_record_carries_the_image_id():
    sender = FileSender("photo.jpg", b"", 0, "none", 100, image_id=0xABCDEF01)
    assembler = FileAssembler(100)
    done = assembler.add(parse_packet(sender.packet(0)))
    desc, content = assembler.message(done)
    assert desc["image_id"] == "abcdef01" and desc["name"] == "photo.jpg" and content == b""
