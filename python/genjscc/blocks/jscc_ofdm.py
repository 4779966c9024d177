"""ofdm_jscc_rx: OFDM receiver for analog (Deep JSCC) payloads, from gr-digital's OFDM parts.

The transmitter is :class:`genjscc.blocks.ofdm.ofdm_qam_tx` fed with c32 PDUs (any complex
values go onto the data carriers). The receiver is :class:`~genjscc.blocks.ofdm.ofdm_qam_rx`'s
chain (Schmidl & Cox sync, header/payload demux, preamble channel estimate, BPSK header, frame
equalizer, serializer) with two changes that analog symbols need:

* **No decision feedback.** A decision-directed equalizer slices every symbol to the nearest
  constellation point and re-estimates the channel from it, which is meaningless for analog
  symbols. The payload uses gr-digital's ``ofdm_equalizer_static`` (divide by the channel
  estimate; pilot carriers refresh only themselves).
* **Common phase tracking on the pilots.** The carrier offset left after the preamble's
  estimate turns every OFDM symbol a little further; each symbol is de-rotated by the phase
  its pilots show against the channel estimate.
* **A smoothed channel estimate and an SNR estimate.** The estimate from one preamble symbol
  has an error as large as the noise (``N0`` per carrier), which would double the noise on
  every equalized symbol (-3 dB). ``_chan_taps_smoother`` removes the common delay slope
  (the timing offset's linear phase), averages the taps over ``smooth_len`` neighbouring
  carriers (error variance ``N0 / smooth_len``) and puts the phase back. The residual between
  the raw and smoothed taps estimates the noise: the frame's PDU carries ``snr_db``, the
  Es/N0 of the equalized symbols (smoothing error included), which ``jscc_image_decoder``
  reads.

Output: one c32 PDU per frame with ``packet_num`` (12-bit TX frame counter), ``packet_len``
and ``snr_db`` metadata. Sync needs about 12 dB SNR or more (gr-digital's detector threshold).
"""

from __future__ import annotations

import numpy as np
import pmt

from genjscc.blocks._meta import KEY_SNR_DB
from genjscc.blocks._pdu import keep_alive
from genjscc.blocks.ofdm import FRAME_LEN_KEY, _layout, _sync_and_header
from genjscc.core.channel.ofdm import smooth_channel_taps
from gnuradio import digital, fft, gr, pdu

__all__ = ["ofdm_jscc_rx"]

CHAN_TAPS_KEY = pmt.intern("ofdm_sync_chan_taps")
# Gains of the pilot phase-tracking loop. Behind the decoder's symbol spreading, per-symbol
# jitter becomes a small white noise while a frame's *mean* phase error stays a gain error on
# the strongest latents, so a fast loop (little lag after its start at phase 0) is the better
# trade: measured on the OFDM-vs-AWGN test, 0.3/0.02 gave -0.96 dB, 0.5/0.05 -0.37 dB.
PHASE_GAIN, STEP_GAIN = 0.5, 0.05


class _chan_taps_smoother(gr.sync_block):
    """Pass payload OFDM symbols (FFT-shifted vectors) through, with three corrections.

    At the first symbol of a frame (the one carrying the channel-taps tag) the taps are
    smoothed (:func:`smooth_channel_taps`) and an ``snr_db`` tag is added. Every symbol is
    then de-rotated by its common phase error, measured on its pilots against the smoothed
    taps: the residual carrier offset left by the preamble's estimate turns the whole symbol a
    little further each symbol, which a decision-directed equalizer would track on the data
    and a static one does not.
    """

    def __init__(self, fft_len: int, active: list[int], smooth_len: int,
                 pilot_carriers: list[list[int]], pilot_symbols: list[list[complex]],
                 symbols_skipped: int = 1):
        gr.sync_block.__init__(self, "genjscc_chan_taps_smoother",
                               in_sig=[(np.complex64, fft_len)],
                               out_sig=[(np.complex64, fft_len)])
        keep_alive(self)
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.active = np.asarray(sorted(active))
        self.smooth_len = smooth_len
        self.pilot_idx = [np.asarray(p) + fft_len // 2 for p in pilot_carriers]
        self.pilot_syms = [np.asarray(s, dtype=np.complex64) for s in pilot_symbols]
        self.skipped = symbols_skipped
        self._taps: np.ndarray | None = None
        self._symbol = 0
        self._phase = 0.0  # tracked common phase (rad) and its increment per symbol
        self._step = 0.0

    def work(self, input_items, output_items):
        n = len(output_items[0])
        inp, out = input_items[0][:n], output_items[0]
        base_in, base_out = self.nitems_read(0), self.nitems_written(0)
        starts = {}
        for tag in self.get_tags_in_window(0, 0, n):
            rel = tag.offset - base_in
            value = tag.value
            if pmt.eq(tag.key, CHAN_TAPS_KEY) and pmt.is_c32vector(value):
                taps = np.asarray(pmt.c32vector_elements(value), dtype=np.complex64)
                smoothed, snr_db = smooth_channel_taps(taps, self.active, self.smooth_len)
                starts[rel] = smoothed
                value = pmt.init_c32vector(len(smoothed), smoothed.tolist())
                self.add_item_tag(0, base_out + rel, KEY_SNR_DB, pmt.from_double(snr_db))
            self.add_item_tag(0, base_out + rel, tag.key, value)
        for i in range(n):
            if i in starts:
                self._taps, self._symbol, self._phase, self._step = starts[i], 0, 0.0, 0.0
            out[i] = inp[i] * self._phase_correction(inp[i])
            self._symbol += 1
        return n

    def _phase_correction(self, symbol: np.ndarray) -> complex:
        if self._taps is None:
            return 1.0
        t = self._symbol + self.skipped
        idx = self.pilot_idx[t % len(self.pilot_idx)]
        ref = self._taps[idx] * self.pilot_syms[t % len(self.pilot_syms)]
        corr = np.sum(symbol[idx] * np.conj(ref))
        if abs(corr) > 0:
            # Second-order loop: a few pilots per symbol give a noisy phase; the residual
            # carrier offset makes the true phase a ramp, which the loop follows smoothly.
            predicted = self._phase + self._step
            error = float(np.angle(corr * np.exp(-1j * predicted)))
            self._phase = predicted + PHASE_GAIN * error
            self._step += STEP_GAIN * error
        return complex(np.exp(-1j * self._phase))


class ofdm_jscc_rx(gr.hier_block2):
    """OFDM receiver for analog payloads (module docstring): complex baseband in, PDUs out.

    Input (stream, c32): complex baseband from ``ofdm_qam_tx`` frames.
    Output (message ``out``): one c32 PDU of equalized payload symbols per frame whose header
    CRC passed, with ``packet_num``, ``packet_len`` and ``snr_db`` metadata.

    Parameters: the layout (``fft_len``, ``cp_len``, carriers, pilots, sync words; ``None`` =
    the defaults) must equal the transmitter's; ``sync_threshold`` of the Schmidl & Cox
    detector; ``smooth_len`` carriers averaged in the channel estimate (>= 3: the spread
    around the average is also the noise estimate);
    ``packet_len_key`` internal tag key.
    """

    def __init__(self, fft_len: int = 64, cp_len: int = 16, occupied_carriers=None,
                 pilot_carriers=None, pilot_symbols=None, sync_word1=None, sync_word2=None,
                 sync_threshold: float = 0.9, smooth_len: int = 9,
                 packet_len_key: str = "packet_len"):
        gr.hier_block2.__init__(self, "genjscc_ofdm_jscc_rx",
                                gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        occupied, pilots, pilot_syms, sw1, sw2 = _layout(
            fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols, sync_word1,
            sync_word2)
        if not 0.0 < sync_threshold < 1.0 or smooth_len < 3:
            raise ValueError("need 0 < sync_threshold < 1 and smooth_len >= 3")
        self.message_port_register_hier_out("out")

        demux = _sync_and_header(self, fft_len, cp_len, sync_threshold, occupied, pilots,
                                 pilot_syms, (sw1, sw2), packet_len_key)

        # The shifted FFT puts carrier c at index c + fft_len / 2.
        active = sorted({c + fft_len // 2 for c in occupied[0] + pilots[0]})
        self.smoother = _chan_taps_smoother(fft_len, active, smooth_len, pilots, pilot_syms)
        payload_eq = digital.ofdm_equalizer_static(fft_len, occupied, pilots, pilot_syms, 1, True)
        to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, packet_len_key)
        self.connect(
            (demux, 1), fft.fft_vcc(fft_len, True, (), True), self.smoother,
            digital.ofdm_frame_equalizer_vcvc(payload_eq.base(), cp_len, FRAME_LEN_KEY),
            digital.ofdm_serializer_vcc(fft_len, occupied, FRAME_LEN_KEY, packet_len_key, 1),
            to_pdu)
        self.msg_connect(to_pdu, "pdus", self, "out")
