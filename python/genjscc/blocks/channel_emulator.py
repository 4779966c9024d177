"""``channel_emulator``: the impairments of a radio channel as a GNU Radio stream block, built
from gr-channels, gr-filter, gr-analog and gr-blocks parts.

The same channel as :class:`genjscc.core.channel.emulator.ChannelEmulator` (the numpy model
that the library, the tests and the benchmarks use without GNU Radio), with the same
parameters, units and order of impairments: sample-rate offset, multipath, carrier offset,
phase noise, AWGN. Only the random draws differ (GNU Radio's generators, seeded from
``seed``), so the two agree in distribution, not sample for sample (tests/test_channel_block.py
checks the agreement).

Parts, each present only when its impairment is on:

* sample-rate offset: ``filter.mmse_resampler_cc`` (ratio ``1 + sro_ppm 1e-6`` input samples per
  output sample, as in ``channels.channel_model``);
* static multipath (``3tap``, a tap list, or a TDL profile with ``doppler = 0``):
  ``filter.fir_filter_ccc`` with the numpy emulator's very taps for this ``seed``
  (:func:`~genjscc.core.channel.emulator.static_fir`), so static channels agree exactly;
* fading 3GPP TDL-A/B/C (``doppler > 0``): ``channels.selective_fading_model``
  (sum-of-sinusoids Rayleigh paths at the profile's delays times ``delay_spread`` samples,
  powers normalized to unit mean energy, maximum Doppler ``doppler`` cycles per sample). It
  computes its taps per sample: about 0.03 Msps here, far from real time (the numpy emulator:
  0.016 Msps);
* carrier offset: ``blocks.rotator_cc`` (``cfo`` subcarriers of ``fft_len``);
* Wiener phase noise: Gaussian steps of ``phase_noise`` radians (``analog.noise_source_f``)
  integrated by ``analog.frequency_modulator_fc`` and multiplied in;
* AWGN: ``analog.fastnoise_source_c`` of complex variance ``N0 = 10^(-es_n0_db / 10)`` per
  sample (Es/N0 per data subcarrier symbol of the burst OFDM PHY), added.
"""

from __future__ import annotations

import math

import numpy as np

from genjscc.core.channel.emulator import TDL_PROFILES, ChannelSpec, static_fir
from gnuradio import analog, blocks, channels, filter, gr

__all__ = ["channel_emulator"]

_NOISE_POOL = 1 << 16  # fastnoise_source's pool of precomputed samples (channel_model: 8192)
_SINUSOIDS = 16  # sum-of-sinusoids terms per fading path (as the numpy emulator)
_SINC_SPAN = 8  # extra FIR taps after the longest TDL delay (sinc tail)


class channel_emulator(gr.hier_block2):
    """Radio channel impairments between a transmitter and a receiver (stream in, stream out).

    Input (stream, c32): baseband samples from a transmitter.
    Output (stream, c32): the same after the channel; with a sample-rate offset, about
    ``1 / (1 + sro_ppm 1e-6)`` output samples per input sample.

    Parameters (units as :mod:`genjscc.core.channel.emulator`):
        es_n0_db: Es/N0 per data subcarrier symbol in dB (complex noise variance per sample
            ``10^(-es_n0_db / 10)``); ``None``: no noise.
        cfo: carrier frequency offset in subcarriers of ``fft_len``.
        fft_len: subcarriers of the PHY (64 for the burst OFDM PHY).
        sro_ppm: sample-rate offset in ppm (positive: the receiver's clock runs slow).
        multipath: ``none``, ``3tap``, ``tdl-a``, ``tdl-b``, ``tdl-c`` or comma-separated complex
            taps (one per sample).
        delay_spread: TDL delay scale in samples.
        doppler: maximum Doppler of the TDL paths in cycles per sample (0: static paths).
        phase_noise: standard deviation of the Wiener phase step per sample, radians.
        seed: seed of every random part (the same seed gives the same output).

    Bad parameters raise ``ValueError`` naming the parameter (the checks of ``ChannelSpec``).
    """

    def __init__(self, es_n0_db: float | None = None, cfo: float = 0.0, fft_len: int = 64,
                 sro_ppm: float = 0.0, multipath: str = "none", delay_spread: float = 4.0,
                 doppler: float = 0.0, phase_noise: float = 0.0, seed: int = 0) -> None:
        gr.hier_block2.__init__(self, "channel_emulator",
                                gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.spec = ChannelSpec(es_n0_db=es_n0_db, cfo=cfo, fft_len=fft_len, sro_ppm=sro_ppm,
                                multipath=multipath, delay_spread=delay_spread,
                                doppler=doppler, phase_noise=phase_noise, seed=seed)
        self._parts = _parts(self.spec)
        chain = [self, *self._parts["chain"]]
        if len(chain) > 1:
            self.connect(*chain)
        last = chain[-1]
        for mixer, source in self._parts["mixers"]:  # (multiply or add, its other input)
            self.connect(last, (mixer, 0))
            self.connect(source, (mixer, 1))
            last = mixer
        self.connect(last, self)

    def parts(self) -> list[str]:
        """The GNU Radio blocks in signal order (for logs and tests)."""
        return list(self._parts["names"])


def _parts(spec: ChannelSpec) -> dict:
    """The blocks of ``spec``'s impairments: ``chain`` (in series), ``mixers`` ((multiply or
    add, its other input) pairs after the chain) and their ``names`` in signal order."""
    chain: list = []
    mixers: list = []
    names: list[str] = []
    # seeds of the random parts: distinct, fixed by `seed` (GNU Radio's generators take ints;
    # a seed of 0 would mean "from the clock" for some of them)
    seeds = [int(s) + 1 for s in np.random.SeedSequence(spec.seed).generate_state(3) % (1 << 30)]
    if spec.sro_ppm:
        chain.append(filter.mmse_resampler_cc(0.0, 1.0 + spec.sro_ppm * 1e-6))
        names.append("filter.mmse_resampler_cc")
    fir = static_fir(spec)
    if fir is not None:  # the numpy emulator's very taps: static channels agree exactly
        chain.append(filter.fir_filter_ccc(1, [complex(t) for t in fir]))
        names.append("filter.fir_filter_ccc")
    elif spec.multipath != "none":
        chain.append(_fading_tdl(spec, seeds[0]))
        names.append("channels.selective_fading_model")
    if spec.cfo:
        chain.append(blocks.rotator_cc(2 * math.pi * spec.cfo / spec.fft_len))
        names.append("blocks.rotator_cc")
    if spec.phase_noise:
        steps = analog.noise_source_f(analog.GR_GAUSSIAN, spec.phase_noise, seeds[1])
        phase = analog.frequency_modulator_fc(1.0)
        mixers.append((blocks.multiply_cc(), _then(steps, phase)))
        names.append("analog.frequency_modulator_fc")
    if spec.es_n0_db is not None:
        noise = analog.fastnoise_source_c(analog.GR_GAUSSIAN, math.sqrt(spec.noise_var),
                                          seeds[2], _NOISE_POOL)
        mixers.append((blocks.add_cc(), noise))
        names.append("analog.fastnoise_source_c")
    if not chain and not mixers:
        chain.append(blocks.copy(gr.sizeof_gr_complex))
        names.append("blocks.copy")
    return {"chain": chain, "mixers": mixers, "names": names}


class _then(gr.hier_block2):
    """Two blocks in series as one source (a phase-noise generator)."""

    def __init__(self, first, second) -> None:
        gr.hier_block2.__init__(self, "then", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.connect(first, second, self)


def _fading_tdl(spec: ChannelSpec, seed: int):
    profile = TDL_PROFILES[str(spec.multipath)]
    delays = [d * spec.delay_spread for d, _ in profile]
    powers = np.array([10 ** (p / 10) for _, p in profile])
    mags = np.sqrt(powers / powers.sum())
    return channels.selective_fading_model(_SINUSOIDS, spec.doppler, False, 0.0, seed,
                                           delays, [float(m) for m in mags],
                                           math.ceil(max(delays)) + _SINC_SPAN)
