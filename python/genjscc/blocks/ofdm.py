"""OFDM transmitter and receiver for QAM payloads, built from gr-digital's OFDM parts.

gr-digital's ``ofdm_tx``/``ofdm_rx`` carry only BPSK/QPSK/8PSK payloads and hard bits. These
hier blocks reuse the same parts (carrier allocator, FFT, cyclic prefixer, Schmidl & Cox sync,
header/payload demux, channel estimator, frame equalizer, serializer) with the frame layout of
gr-digital's examples/digital/ofdm/{tx,rx}_ofdm.grc, but carry *symbols*: any
genjscc.core.mapping constellation on the payload, and equalized soft symbols out, for
``soft_demapper``.

Frame: sync word 1, sync word 2, one BPSK header symbol (gr-digital ``packet_header_ofdm``:
12-bit length, 12-bit packet number, CRC-8), then the payload symbols on the occupied
carriers, pilots on the pilot carriers. The header's length field counts payload *symbols*
(the header is built with ``bits_per_payload_sym=8``, which makes gr-digital's byte count
equal the symbol count), so a frame carries 1 to 4095 payload symbols.

Levels: data, pilot and header carriers have unit energy (the payload points are those of
``genjscc.core.mapping``, ``E|x|^2 = 1``). The FFTs are unnormalized (as in gr-digital), so the
TX output is not power-normalized: its average power per sample is about the number of active
carriers (52 with the defaults). With ``channels.channel_model(noise_voltage=s)`` (complex
noise power ``s**2``) the noise on an equalized payload symbol is ``s**2 / fft_len`` plus the
channel-estimation error.
"""

from __future__ import annotations

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import KEY_MODULATION, KEY_NOISE_VAR, KEY_NUM_BITS
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.core.mapping import Constellation, constellation
from gnuradio import analog, blocks, digital, fft, gr, pdu

__all__ = [
    "DEFAULT_OCCUPIED_CARRIERS",
    "DEFAULT_PILOT_CARRIERS",
    "DEFAULT_PILOT_SYMBOLS",
    "MAX_PAYLOAD_SYMBOLS",
    "make_sync_words",
    "ofdm_qam_rx",
    "ofdm_qam_tx",
]

# 802.11a-like allocation, as gr-digital's ofdm_txrx defaults: 48 data and 4 pilot carriers.
DEFAULT_OCCUPIED_CARRIERS = (
    tuple(
        list(range(-26, -21))
        + list(range(-20, -7))
        + list(range(-6, 0))
        + list(range(1, 7))
        + list(range(8, 21))
        + list(range(22, 27))
    ),
)
DEFAULT_PILOT_CARRIERS = ((-21, -7, 7, 21),)
# gr-digital's 127-step pilot scrambling sequence (ofdm_txrx._pilot_sym_scramble_seq).
_PILOT_SCRAMBLE = (
    1, 1, 1, 1, -1, -1, -1, 1, -1, -1, -1, -1, 1, 1, -1, 1, -1, -1, 1, 1, -1, 1, 1, -1, 1, 1, 1,
    1, 1, 1, -1, 1, 1, 1, -1, 1, 1, -1, -1, 1, 1, 1, -1, 1, -1, -1, -1, 1, -1, 1, -1, -1, 1, -1,
    -1, 1, 1, 1, 1, 1, -1, -1, 1, 1, -1, -1, 1, -1, 1, -1, 1, 1, -1, -1, -1, 1, 1, -1, -1, -1,
    -1, 1, -1, -1, 1, -1, 1, 1, 1, 1, -1, 1, -1, 1, -1, 1, -1, -1, -1, -1, -1, 1, -1, 1, 1, -1,
    1, -1, 1, 1, 1, -1, -1, 1, -1, -1, -1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
)  # fmt: skip
DEFAULT_PILOT_SYMBOLS = tuple((x, x, x, -x) for x in _PILOT_SCRAMBLE)

# The header's length field has 12 bits.
MAX_PAYLOAD_SYMBOLS = 4095
FRAME_LEN_KEY = "frame_len"
PACKET_NUM_KEY = "packet_num"
_SYNC_SEED = 42  # gr-digital's seed: our default sync words equal ofdm_tx's


def make_sync_words(
    fft_len: int = 64,
    occupied_carriers=DEFAULT_OCCUPIED_CARRIERS,
    pilot_carriers=DEFAULT_PILOT_CARRIERS,
) -> tuple[list[complex], list[complex]]:
    """Schmidl & Cox preamble symbols (FFT-shifted), equal to gr-digital ``ofdm_tx``'s defaults.

    Word 1 uses every second active carrier with amplitude sqrt(2) (two equal halves in time,
    for timing and fine frequency); word 2 uses every active carrier (coarse frequency and
    channel estimate). Both are BPSK from a fixed seed; the global numpy RNG is not touched.
    """
    active = {c % fft_len for c in list(occupied_carriers[0]) + list(pilot_carriers[0])}
    rng = np.random.RandomState(_SYNC_SEED)
    sw1 = [
        (np.sqrt(2) if rng.randint(2) == 0 else -np.sqrt(2)) if (k in active and k % 2) else 0.0
        for k in range(fft_len)
    ]
    rng = np.random.RandomState(_SYNC_SEED)
    sw2 = [(1.0 if rng.randint(2) == 0 else -1.0) if k in active else 0.0 for k in range(fft_len)]
    sw2[0] = 0.0
    shift = np.fft.fftshift
    return [complex(v) for v in shift(sw1)], [complex(v) for v in shift(sw2)]


def _check_layout(fft_len: int, cp_len: int, occupied_carriers, pilot_carriers, sync_words):
    if fft_len < 8 or cp_len < 0 or cp_len > fft_len:
        raise ValueError(f"need fft_len >= 8 and 0 <= cp_len <= fft_len, got {fft_len}, {cp_len}")
    for name, carriers in (("occupied_carriers", occupied_carriers),
                           ("pilot_carriers", pilot_carriers)):
        if not carriers or any(not -fft_len // 2 <= c < fft_len // 2 for c in carriers[0]):
            raise ValueError(f"{name} must be a tuple of carrier sets within +-fft_len/2")
    if len(occupied_carriers[0]) < 32:
        # The header (12 + 12 + 8 bits) is one BPSK OFDM symbol on the first carrier set.
        raise ValueError("the first set of occupied_carriers needs >= 32 carriers for the header")
    for word in sync_words:
        if len(word) != fft_len:
            raise ValueError(f"sync words must have fft_len = {fft_len} entries, got {len(word)}")


def _layout(fft_len: int, cp_len: int, occupied_carriers, pilot_carriers, pilot_symbols,
            sync_word1, sync_word2) -> tuple[list, list, list, list, list]:
    """A transmitter's or receiver's carrier layout as lists, ``None`` replaced by the
    defaults, checked (ValueError): ``(occupied, pilots, pilot symbols, sync word 1, 2)``."""
    occupied = [list(c) for c in (occupied_carriers or DEFAULT_OCCUPIED_CARRIERS)]
    pilots = [list(p) for p in (pilot_carriers or DEFAULT_PILOT_CARRIERS)]
    pilot_syms = [list(s) for s in (pilot_symbols or DEFAULT_PILOT_SYMBOLS)]
    default_sw1, default_sw2 = make_sync_words(fft_len, occupied, pilots)
    sw1 = list(sync_word1) if sync_word1 is not None else default_sw1
    sw2 = list(sync_word2) if sync_word2 is not None else default_sw2
    _check_layout(fft_len, cp_len, occupied, pilots, (sw1, sw2))
    return occupied, pilots, pilot_syms, sw1, sw2


def _sync_and_header(rx: gr.hier_block2, fft_len: int, cp_len: int, sync_threshold: float,
                     occupied: list, pilots: list, pilot_syms: list, sync_words: tuple,
                     packet_len_key: str):
    """The front of an OFDM receiver, connected inside ``rx`` from its stream input: Schmidl
    & Cox timing and fine frequency, the header/payload split, the header (channel estimate
    from the preamble, BPSK, parser -> split). Returns the split block
    (``digital.header_payload_demux``): its output 1 is the payload's time-domain symbols."""
    sync = digital.ofdm_sync_sc_cfb(fft_len, cp_len, False, sync_threshold)
    delay = blocks.delay(gr.sizeof_gr_complex, fft_len + cp_len)
    oscillator = analog.frequency_modulator_fc(-2.0 / fft_len)
    mixer = blocks.multiply_cc()
    demux = digital.header_payload_demux(3, fft_len, cp_len, FRAME_LEN_KEY, "", True)
    rx.connect(rx, sync)
    rx.connect(rx, delay, (mixer, 0), (demux, 0))
    rx.connect((sync, 0), oscillator, (mixer, 1))
    rx.connect((sync, 1), (demux, 1))

    bpsk = digital.constellation_bpsk()
    header_eq = digital.ofdm_equalizer_simpledfe(fft_len, bpsk.base(), occupied, pilots,
                                                 pilot_syms, 0)
    header_parser = digital.packet_headerparser_b(
        _header_formatter(occupied, packet_len_key).formatter()
    )
    rx.connect(
        (demux, 0),
        fft.fft_vcc(fft_len, True, (), True),
        digital.ofdm_chanest_vcvc(*sync_words, 1),
        digital.ofdm_frame_equalizer_vcvc(header_eq.base(), cp_len, FRAME_LEN_KEY, True, 1),
        digital.ofdm_serializer_vcc(fft_len, occupied, FRAME_LEN_KEY),
        digital.constellation_decoder_cb(bpsk.base()),
        header_parser,
    )
    rx.msg_connect(header_parser, "header_data", demux, "header_data")
    return demux


def _header_formatter(occupied_carriers, packet_len_key: str):
    # bits_per_payload_sym=8: the parser divides the header's count * 8 by 8, so the count
    # (packet_len) is in payload symbols and we never round bits to symbols.
    return digital.packet_header_ofdm(
        [list(c) for c in occupied_carriers], 1, packet_len_key, FRAME_LEN_KEY, PACKET_NUM_KEY,
        1, 8, False,
    )


class _ofdm_tx_frontend(PduBlock):
    """Validate (and for u8 PDUs map) the TX input; emit c32 payload PDUs with no metadata."""

    def __init__(self, const: Constellation):
        PduBlock.__init__(self, "genjscc_ofdm_tx_frontend")
        self.constellation = const

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        if pmt.is_pair(msg) and pmt.is_u8vector(pmt.cdr(msg)):
            _, data = parse_pdu(msg, "u8")
            bits = np.unpackbits(data)
            bps = self.constellation.bits_per_symbol
            if bits.size % bps:
                raise PduError(
                    f"{data.size} bytes do not fill whole {self.constellation.name} symbols; "
                    f"pad the payload to a multiple of {bps} bits"
                )
            symbols = self.constellation.map(torch.from_numpy(bits)).numpy()
        else:
            _, symbols = parse_pdu(msg, "c32")
        if symbols.size > MAX_PAYLOAD_SYMBOLS:
            raise PduError(
                f"{symbols.size} payload symbols exceed the header's limit of "
                f"{MAX_PAYLOAD_SYMBOLS} per frame; split the payload into smaller PDUs"
            )
        # Metadata would become stream tags and could collide with the length tag: drop it.
        return make_pdu(pmt.make_dict(), symbols)


class ofdm_qam_tx(gr.hier_block2):
    """OFDM transmitter for PDUs of payload symbols (or bytes), complex baseband out.

    Input (message ``in``): PDU of c32 payload symbols (e.g. from ``qam_mapper``), or PDU of
    u8 packed bytes (MSB first), which are mapped with ``modulation`` here. 1 to 4095 symbols
    per PDU; metadata is not transmitted. Malformed PDUs are logged, counted and dropped
    (``num_errors()``).

    Output (stream, c32): one OFDM frame per PDU, frames separated by ``rolloff``-shaped
    symbol edges; each frame starts with a ``packet_len_key`` tag (samples in the frame).

    Parameters: ``modulation`` (only used for u8 input), ``fft_len``, ``cp_len``,
    ``occupied_carriers``/``pilot_carriers``/``pilot_symbols`` (gr-digital format; ``None`` =
    802.11a-like defaults), ``sync_word1``/``sync_word2`` (``None`` = gr-digital's),
    ``rolloff`` (raised-cosine edge in samples, < cp_len; > 0 avoids the losses of
    back-to-back frames), ``packet_len_key`` (internal tag key).
    """

    def __init__(
        self,
        modulation: str = "16qam",
        fft_len: int = 64,
        cp_len: int = 16,
        occupied_carriers=None,
        pilot_carriers=None,
        pilot_symbols=None,
        sync_word1=None,
        sync_word2=None,
        rolloff: int = 2,
        packet_len_key: str = "packet_len",
    ):
        gr.hier_block2.__init__(
            self, "genjscc_ofdm_qam_tx", gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
        )
        occupied, pilots, pilot_syms, sw1, sw2 = _layout(
            fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols, sync_word1,
            sync_word2)
        if not 0 <= rolloff < max(cp_len, 1):
            raise ValueError(f"rolloff must be in [0, cp_len), got {rolloff}")
        self.constellation = constellation(modulation)

        self.message_port_register_hier_in("in")
        self.frontend = _ofdm_tx_frontend(self.constellation)
        to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, packet_len_key)
        self.msg_connect(self, "in", self.frontend, "in")
        self.msg_connect(self.frontend, "out", to_stream, "pdus")

        # Header: a byte stream as long as the payload gives the header generator its count.
        header_gen = digital.packet_headergenerator_bb(
            _header_formatter(occupied, packet_len_key).formatter(), packet_len_key
        )
        header_mod = digital.chunks_to_symbols_bc(digital.constellation_bpsk().points())
        mux = blocks.tagged_stream_mux(gr.sizeof_gr_complex, packet_len_key, 1)
        self.connect(to_stream, blocks.complex_to_real(), blocks.float_to_uchar(), header_gen,
                     header_mod, (mux, 0))
        self.connect(to_stream, (mux, 1))

        allocator = digital.ofdm_carrier_allocator_cvc(
            fft_len, [list(c) for c in occupied], [list(p) for p in pilots],
            [list(s) for s in pilot_syms], [sw1, sw2], packet_len_key,
        )
        ifft = fft.fft_vcc(fft_len, False, (), True)
        prefixer = digital.ofdm_cyclic_prefixer(fft_len, fft_len + cp_len, rolloff, packet_len_key)
        self.connect(mux, allocator, ifft, prefixer, self)

    def num_errors(self) -> int:
        """Input PDUs dropped as malformed."""
        return self.frontend.num_errors()

    def num_processed(self) -> int:
        """Input PDUs sent as frames."""
        return self.frontend.num_processed()


class _ofdm_rx_annotator(PduBlock):
    """Add ``modulation``, ``num_bits`` and a decision-directed ``noise_var`` to RX PDUs."""

    def __init__(self, const: Constellation, estimate_noise_var: bool):
        PduBlock.__init__(self, "genjscc_ofdm_rx_annotator")
        self.constellation = const
        self.estimate_noise_var = estimate_noise_var

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, y = parse_pdu(msg, "c32")
        const = self.constellation
        meta = pmt.dict_add(meta, KEY_MODULATION, pmt.intern(const.name))
        meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(y.size * const.bits_per_symbol))
        if self.estimate_noise_var:
            yt = torch.from_numpy(y)
            nearest = const.map(const.hard_decision(yt))
            # Mean squared distance to the nearest point: unbiased while symbol errors are
            # rare (the SNRs where the preamble sync works), optimistic below. Floor keeps
            # LLRs finite on noiseless loopbacks.
            nv = max(float(torch.mean(torch.abs(yt - nearest) ** 2)), 1e-6)
            meta = pmt.dict_add(meta, KEY_NOISE_VAR, pmt.from_double(nv))
        return make_pdu(meta, y)


class ofdm_qam_rx(gr.hier_block2):
    """OFDM receiver for ``ofdm_qam_tx`` frames: complex baseband in, PDUs of payload symbols.

    Input (stream, c32): complex baseband.
    Output (message ``out``): one PDU of c32 equalized payload symbols per detected frame whose
    header CRC passed. Metadata: ``packet_num`` (12-bit TX counter, for loss counting),
    ``packet_len`` (symbols), ``ofdm_sync_carr_offset``, ``modulation``, ``num_bits`` and,
    with ``estimate_noise_var``, ``noise_var``: the decision-directed mean of |y - nearest
    point|^2 over the frame (N0 after equalization, including channel-estimation error), which
    ``soft_demapper`` reads. It underestimates N0 when symbol errors are frequent.

    Parameters: ``modulation`` of the payload (for the decision-feedback equalizer and the
    noise estimate); the layout (``fft_len``, ``cp_len``, carriers, pilots, sync words) must
    equal the transmitter's; ``sync_threshold`` of the Schmidl & Cox detector (0.9 finds
    frames from about 12 dB SNR up); ``dfe_alpha`` channel-tracking factor of gr-digital's
    simple DFE equalizer (its soft output is used); ``packet_len_key`` internal tag key.
    """

    def __init__(
        self,
        modulation: str = "16qam",
        fft_len: int = 64,
        cp_len: int = 16,
        occupied_carriers=None,
        pilot_carriers=None,
        pilot_symbols=None,
        sync_word1=None,
        sync_word2=None,
        sync_threshold: float = 0.9,
        dfe_alpha: float = 0.1,
        estimate_noise_var: bool = True,
        packet_len_key: str = "packet_len",
    ):
        gr.hier_block2.__init__(
            self, "genjscc_ofdm_qam_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
            gr.io_signature(0, 0, 0),
        )
        occupied, pilots, pilot_syms, sw1, sw2 = _layout(
            fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols, sync_word1,
            sync_word2)
        if not 0.0 < sync_threshold < 1.0 or not 0.0 <= dfe_alpha < 1.0:
            raise ValueError("need 0 < sync_threshold < 1 and 0 <= dfe_alpha < 1")
        self.constellation = constellation(modulation)
        self.message_port_register_hier_out("out")

        demux = _sync_and_header(self, fft_len, cp_len, sync_threshold, occupied, pilots,
                                 pilot_syms, (sw1, sw2), packet_len_key)

        # Payload: DFE on our constellation, soft (not sliced) output, serialized to symbols.
        payload_const = digital.constellation_calcdist(
            [complex(p) for p in self.constellation.points.tolist()], [], 4, 1,
            digital.constellation.NO_NORMALIZATION,
        )
        payload_eq = digital.ofdm_equalizer_simpledfe(
            fft_len, payload_const.base(), occupied, pilots, pilot_syms, 1, dfe_alpha, True, True
        )
        to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, packet_len_key)
        self.annotator = _ofdm_rx_annotator(self.constellation, estimate_noise_var)
        self.connect(
            (demux, 1),
            fft.fft_vcc(fft_len, True, (), True),
            digital.ofdm_frame_equalizer_vcvc(payload_eq.base(), cp_len, FRAME_LEN_KEY),
            digital.ofdm_serializer_vcc(fft_len, occupied, FRAME_LEN_KEY, packet_len_key, 1),
            to_pdu,
        )
        self.msg_connect(to_pdu, "pdus", self.annotator, "in")
        self.msg_connect(self.annotator, "out", self, "out")

    def num_processed(self) -> int:
        """Frames delivered as PDUs."""
        return self.annotator.num_processed()

    def num_errors(self) -> int:
        """Frames dropped as malformed after the serializer (should stay 0)."""
        return self.annotator.num_errors()
