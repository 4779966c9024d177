"""The GNU Radio channel_emulator block (gr-channels parts) against the numpy ChannelEmulator:
the same channel in distribution, exactly the same static multipath, seeded and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from genjscc.blocks.channel_emulator import channel_emulator
from genjscc.core.channel.emulator import ChannelEmulator
from gnuradio import blocks, gr

N = 100_000


def through_block(x: np.ndarray, **spec) -> np.ndarray:
    tb = gr.top_block()
    src = blocks.vector_source_c(x.astype(np.complex64), False)
    sink = blocks.vector_sink_c()
    tb.connect(src, channel_emulator(**spec), sink)
    tb.run()
    return np.asarray(sink.data(), np.complex64)


def ofdm_like(n: int, seed: int = 0) -> np.ndarray:
    """Unit-power noise in 52 of 64 bins (band-limited like the OFDM PHY's signal)."""
    rng = np.random.default_rng(seed)
    spectrum = (rng.standard_normal((n // 64, 64)) + 1j * rng.standard_normal((n // 64, 64)))
    spectrum[:, 27:38] = 0  # guard band around Nyquist (fft order)
    spectrum[:, 0] = 0
    x = np.fft.ifft(spectrum, axis=1).ravel()
    return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


def test_noise_has_the_variance_of_es_n0_and_the_seed_fixes_it():
    zeros = np.zeros(N, np.complex64)
    y = through_block(zeros, es_n0_db=3.0, seed=5)
    assert np.var(y) == pytest.approx(10 ** -0.3, rel=0.03)
    assert np.mean(y.real ** 2) == pytest.approx(np.mean(y.imag ** 2), rel=0.05)
    assert np.array_equal(y, through_block(zeros, es_n0_db=3.0, seed=5))
    assert not np.array_equal(y, through_block(zeros, es_n0_db=3.0, seed=6))


@pytest.mark.parametrize("multipath", ["3tap", "tdl-b", "1,0.5j,0,-0.25"])
def test_static_multipath_is_the_numpy_emulators_very_channel(multipath):
    x = ofdm_like(16_384)
    spec = {"multipath": multipath, "delay_spread": 3.0, "seed": 7}
    ours, numpy_model = through_block(x, **spec), ChannelEmulator(**spec)(x)
    assert ours.size == numpy_model.size
    assert np.max(np.abs(ours - numpy_model)) < 1e-4


def test_cfo_rotates_as_the_numpy_emulator():
    x = ofdm_like(16_384)
    ours, numpy_model = through_block(x, cfo=0.7), ChannelEmulator(cfo=0.7)(x)
    assert np.max(np.abs(ours - numpy_model)) < 1e-3


def test_sample_rate_offset_stretches_time_as_the_numpy_emulator():
    """A tone at 0.1 cycles per sample leaves at 0.1 (1 + ppm) in both, with as many samples
    (up to the interpolators' different delays)."""
    n, f, ppm = 65_536, 0.1, 200.0
    tone = np.exp(2j * np.pi * f * np.arange(n)).astype(np.complex64)

    def frequency(y):
        y = y[64:-64]
        return np.angle(np.sum(y[1:] * np.conj(y[:-1]))) / (2 * np.pi)

    ours, numpy_model = through_block(tone, sro_ppm=ppm), ChannelEmulator(sro_ppm=ppm)(tone)
    for y in (ours, numpy_model):
        assert frequency(y) == pytest.approx(f * (1 + ppm * 1e-6), abs=2e-7)
        assert abs(y.size - n / (1 + ppm * 1e-6)) < 10


def test_wiener_phase_noise_has_the_stated_step():
    sigma = 0.02
    y = through_block(np.ones(N, np.complex64), phase_noise=sigma, seed=1)
    steps = np.angle(y[1:] * np.conj(y[:-1]))
    assert np.std(steps) == pytest.approx(sigma, rel=0.03)
    assert np.allclose(np.abs(y), 1.0, atol=1e-4)


def test_every_impairment_together_keeps_unit_power_and_the_noise_level():
    x = ofdm_like(N)
    spec = {"es_n0_db": 10.0, "cfo": 0.3, "sro_ppm": 20.0, "multipath": "3tap",
            "phase_noise": 1e-3, "seed": 3}
    ours = through_block(x, **spec)
    numpy_model = ChannelEmulator(**spec)(x)
    for y in (ours, numpy_model):
        assert np.mean(np.abs(y) ** 2) == pytest.approx(1.1, rel=0.03)


def test_parts_say_which_gnu_radio_blocks_run():
    assert channel_emulator().parts() == ["blocks.copy"]
    parts = channel_emulator(es_n0_db=5.0, cfo=0.1, sro_ppm=5.0, multipath="tdl-a",
                             doppler=1e-3, phase_noise=1e-3).parts()
    assert parts == ["filter.mmse_resampler_cc", "channels.selective_fading_model",
                     "blocks.rotator_cc", "analog.frequency_modulator_fc",
                     "analog.fastnoise_source_c"]
    assert channel_emulator(multipath="tdl-a").parts() == ["filter.fir_filter_ccc"]


@pytest.mark.parametrize("bad", [{"multipath": "tdl-z"}, {"doppler": 0.7}, {"sro_ppm": 1e5},
                                 {"phase_noise": -1.0}, {"es_n0_db": float("nan")}])
def test_bad_parameters_raise_value_errors_that_name_them(bad):
    with pytest.raises(ValueError):
        channel_emulator(**bad)


def test_radio_channel_command_refuses_bad_parameters_in_one_line(capsys):
    from genjscc.cli import main

    assert main(["radio", "channel", "--multipath", "tdl-z"]) == 2
    err = capsys.readouterr().err
    assert "radio channel" in err and "tdl-a" in err and "Traceback" not in err
