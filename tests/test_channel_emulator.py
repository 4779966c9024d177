"""The streaming numpy channel emulator: chunking invariance, levels, CFO, SRO, bad specs."""

from __future__ import annotations

import numpy as np
import pytest

from genjscc.core.channel.emulator import ChannelEmulator, ChannelSpec, parse_multipath


def tone(n: int, freq: float = 0.01) -> np.ndarray:
    return np.exp(2j * np.pi * freq * np.arange(n)).astype(np.complex64)


@pytest.mark.parametrize("spec", [
    dict(es_n0_db=10.0, cfo=0.3, phase_noise=0.01),
    dict(sro_ppm=150.0, multipath="3tap"),
    dict(multipath="tdl-c", delay_spread=5.0, doppler=1e-4, es_n0_db=20.0),
    dict(multipath="1,0.5j,-0.2+0.1j", cfo=-1.0, sro_ppm=-30.0, es_n0_db=5.0),
])
def test_any_chunking_gives_the_same_stream(spec):
    x = (np.random.default_rng(0).standard_normal(6000) * (1 + 1j)).astype(np.complex64)
    whole = ChannelEmulator(seed=4, **spec)(x)
    emulator = ChannelEmulator(seed=4, **spec)
    pieces = [emulator(chunk) for chunk in np.split(x, [1, 700, 701, 3000, 5999])]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=2e-5)


def test_noise_level_is_es_n0_per_unit_energy_symbol():
    y = ChannelEmulator(es_n0_db=3.0, seed=1)(np.zeros(200_000, np.complex64))
    assert abs(np.mean(np.abs(y) ** 2) / 10 ** (-0.3) - 1) < 0.02
    assert abs(np.mean(y.real ** 2) - np.mean(y.imag ** 2)) < 0.01


def test_cfo_in_subcarriers_and_unit_energy_multipath():
    y = ChannelEmulator(cfo=2.0, fft_len=64)(np.ones(640, np.complex64))
    np.testing.assert_allclose(y, np.exp(2j * np.pi * 2 / 64 * np.arange(640)), atol=1e-5)
    x = (np.random.default_rng(2).standard_normal((100_000, 2)) @ [1, 1j]).astype(np.complex64)
    for profile in ("3tap", "tdl-a", "tdl-b"):
        y = ChannelEmulator(multipath=profile, seed=3)(x)
        if profile == "3tap":  # static, normalized taps: power preserved
            assert abs(np.mean(np.abs(y) ** 2) / np.mean(np.abs(x) ** 2) - 1) < 0.03
        assert np.all(np.isfinite(y))


def test_sample_rate_offset_stretches_time():
    """A tone at f through +100 ppm comes out at f (1 + 1e-4): the receiver clock runs slow."""
    f = 0.05
    n = 200_000
    y = ChannelEmulator(sro_ppm=100.0)(tone(n, f))
    assert abs(y.size - n / (1 + 1e-4)) < 20
    z = y[100:-100].astype(np.complex128)
    slope = np.angle(np.sum(z[1:] * np.conj(z[:-1]))) / (2 * np.pi)
    assert abs(slope / f - (1 + 1e-4)) < 2e-6


def test_bad_specs_say_what_to_do():
    with pytest.raises(ValueError, match="tdl-a"):
        parse_multipath("rayleigh")
    with pytest.raises(ValueError, match="zero"):
        ChannelSpec(multipath=(0, 0))
    with pytest.raises(ValueError, match="sro_ppm"):
        ChannelSpec(sro_ppm=1e5)
    with pytest.raises(ValueError, match="finite"):
        ChannelSpec(es_n0_db=float("nan"))
    with pytest.raises(ValueError, match="1-D complex"):
        ChannelEmulator()(np.zeros(10))
    assert parse_multipath("1, 0.5j") == (1 + 0j, 0.5j)
