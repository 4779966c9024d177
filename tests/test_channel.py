"""Tests of genjscc.core.channel: SNR bookkeeping, AWGN, Rayleigh block fading, packet loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genjscc.core.channel import (
    AWGN,
    GilbertElliott,
    MarkovPacketLoss,
    RayleighBlockFading,
    add_awgn,
    analog_info_bits_per_channel_use,
    burst_lengths,
    db_to_linear,
    ebno_to_esno_db,
    ebno_to_snr_db,
    equalize,
    esno_to_ebno_db,
    estimate_channel_ls,
    linear_to_db,
    noise_var_from_ebno_db,
    noise_var_from_esno_db,
    snr_to_ebno_db,
)
from genjscc.core.mapping import constellation

# -- SNR conversions ---------------------------------------------------------------------------


def test_db_linear_round_trip_float_numpy_torch():
    assert db_to_linear(10.0) == pytest.approx(10.0)
    assert linear_to_db(100.0) == pytest.approx(20.0)
    assert linear_to_db(0.0) == -math.inf
    arr = np.array([-10.0, 0.0, 3.0, 27.5])
    out = linear_to_db(db_to_linear(arr))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, arr, atol=1e-12)
    ten = torch.tensor([-10.0, 0.0, 3.0, 27.5])
    back = linear_to_db(db_to_linear(ten))
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    torch.testing.assert_close(back, ten)
    assert isinstance(db_to_linear(3), float)
    np.testing.assert_allclose(db_to_linear([0, 10]), [1.0, 10.0])


def test_ebno_esno_round_trip_and_values():
    # QPSK rate 1/2 carries one information bit per symbol: Es/N0 = Eb/N0.
    assert ebno_to_esno_db(4.0, 2, 0.5) == pytest.approx(4.0)
    assert ebno_to_esno_db(0.0, 4, 0.75) == pytest.approx(10 * math.log10(3.0))
    ebno = np.linspace(-5, 20, 11)
    np.testing.assert_allclose(esno_to_ebno_db(ebno_to_esno_db(ebno, 6, 2 / 3), 6, 2 / 3), ebno)
    t = torch.linspace(-5, 20, 11, dtype=torch.float64)
    torch.testing.assert_close(esno_to_ebno_db(ebno_to_esno_db(t, 8, 0.9), 8, 0.9), t)
    # Arrays of code rates work elementwise.
    np.testing.assert_allclose(
        ebno_to_esno_db(0.0, 2, np.array([0.5, 1.0])), [0.0, 10 * math.log10(2)]
    )


def test_analog_per_information_bit_float32_example():
    """A float32 analog value per complex channel use: Eb/N0 = SNR - 15.05 dB."""
    bits = analog_info_bits_per_channel_use(bits_per_dim=32, channel_uses_per_dim=1)
    assert bits == 32
    assert snr_to_ebno_db(20.0, bits) == pytest.approx(20.0 - 15.0515, abs=1e-4)
    snr = torch.tensor([0.0, 10.0, 20.0])
    ebno = snr_to_ebno_db(snr, bits)
    assert ebno.dtype == torch.float32
    torch.testing.assert_close(ebno, snr - 15.0515, atol=1e-4, rtol=0)
    torch.testing.assert_close(ebno_to_snr_db(ebno, bits), snr)
    # Default: 8-bit pixels at bandwidth ratio 1/6 -> 48 information bits per channel use.
    assert analog_info_bits_per_channel_use() == pytest.approx(48.0)
    assert snr_to_ebno_db(10.0, 48.0) == pytest.approx(10.0 - 10 * math.log10(48))


def test_noise_var():
    assert noise_var_from_esno_db(10.0) == pytest.approx(0.1)
    assert noise_var_from_esno_db(0.0, es=2.0) == pytest.approx(2.0)
    # 16-QAM, rate 1/2, Eb/N0 = 3 dB -> Es/N0 = 3 + 10 log10(2) dB.
    assert noise_var_from_ebno_db(3.0, 4, 0.5) == pytest.approx(1 / (2 * 10**0.3))
    nv = noise_var_from_esno_db(torch.tensor([0.0, 10.0]))
    torch.testing.assert_close(nv, torch.tensor([1.0, 0.1]))


@pytest.mark.parametrize(
    "call",
    [
        lambda: ebno_to_esno_db(0.0, 0, 0.5),
        lambda: ebno_to_esno_db(0.0, -2),
        lambda: ebno_to_esno_db(0.0, 2, 0.0),
        lambda: ebno_to_esno_db(0.0, 2, 1.5),
        lambda: esno_to_ebno_db(0.0, 2, float("nan")),
        lambda: ebno_to_esno_db(0.0, 2, np.array([0.5, 1.2])),
        lambda: linear_to_db(-1.0),
        lambda: linear_to_db(torch.tensor([1.0, -0.1])),
        lambda: analog_info_bits_per_channel_use(8, 0),
        lambda: analog_info_bits_per_channel_use(-8, 1),
        lambda: snr_to_ebno_db(0.0, 0.0),
        lambda: noise_var_from_esno_db(0.0, es=0.0),
    ],
)
def test_snr_bad_values_raise(call):
    with pytest.raises(ValueError):
        call()


def test_snr_bad_types_raise():
    with pytest.raises(TypeError):
        db_to_linear("10")
    with pytest.raises(TypeError):
        db_to_linear(torch.tensor([1j]))
    with pytest.raises(TypeError):
        ebno_to_esno_db(1.0, True)


# -- AWGN --------------------------------------------------------------------------------------


def test_awgn_complex_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1_000_000, dtype=torch.complex64)
    w = AWGN()(x, 0.5, generator=g)
    assert w.dtype == torch.complex64 and w.shape == x.shape
    assert float(w.real.var()) == pytest.approx(0.25, rel=0.01)
    assert float(w.imag.var()) == pytest.approx(0.25, rel=0.01)
    assert float((w.abs() ** 2).mean()) == pytest.approx(0.5, rel=0.01)
    assert abs(float((w.real * w.imag).mean())) < 0.002  # circular: I and Q uncorrelated


def test_awgn_real_variance_and_per_batch_noise_var():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(1_000_000)
    w = add_awgn(x, 0.5, generator=g)
    assert w.dtype == torch.float32
    assert float(w.var()) == pytest.approx(0.25, rel=0.01)  # N0/2 per real sample
    xb = torch.zeros(3, 200_000, dtype=torch.complex64)
    nv = torch.tensor([[0.1], [1.0], [4.0]])
    wb = add_awgn(xb, nv, generator=g)
    per_row = (wb.abs() ** 2).mean(dim=1)
    torch.testing.assert_close(per_row, nv.squeeze(1), rtol=0.02, atol=0)


def test_awgn_reproducible_and_signal_kept():
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch.complex64)
    a = add_awgn(x, 0.1, torch.Generator().manual_seed(5))
    b = add_awgn(x, 0.1, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(add_awgn(x, 0.0), x)


def test_awgn_bad_input():
    x = torch.zeros(4, 3, dtype=torch.complex64)
    with pytest.raises(ValueError):
        add_awgn(x, -0.1)
    with pytest.raises(ValueError, match="enlarge"):
        add_awgn(x, torch.ones(2, 4, 3))
    with pytest.raises(ValueError):
        add_awgn(x, torch.ones(5, 1))
    with pytest.raises(TypeError):
        add_awgn(torch.zeros(4, dtype=torch.int64), 1.0)
    with pytest.raises(TypeError):
        add_awgn(np.zeros(4), 1.0)


# -- Rayleigh block fading ---------------------------------------------------------------------


def test_rayleigh_energy_and_block_structure():
    g = torch.Generator().manual_seed(2)
    fading = RayleighBlockFading(block_length=5)
    x = torch.ones(4000, 23, dtype=torch.complex64)
    y, h = fading(x, 0.0, generator=g)
    assert h.shape == x.shape and torch.equal(y, h)  # no noise, x = 1: y = h
    assert float((h.abs() ** 2).mean()) == pytest.approx(1.0, rel=0.03)
    blocks = [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]  # last block is shorter
    for lo, hi in blocks:
        assert torch.equal(h[:, lo:hi], h[:, lo : lo + 1].expand(-1, hi - lo))
    assert bool((h[:, 0] != h[:, 5]).all())  # independent blocks
    assert fading.num_blocks(23) == 5
    # Rayleigh: |h|^2 is exponential(1), P(|h|^2 < 0.1) = 1 - exp(-0.1).
    frac = float(((h[:, ::5].abs() ** 2) < 0.1).double().mean())
    assert frac == pytest.approx(1 - math.exp(-0.1), rel=0.08)
    # block_length=None: one coefficient per row.
    _, h1 = RayleighBlockFading()(x[:10], 0.0, generator=g)
    assert torch.equal(h1, h1[:, :1].expand(-1, 23))


def test_bpsk_rayleigh_ber_matches_closed_form():
    """Coherent BPSK with perfect CSI: BER = (1 - sqrt(g / (1 + g))) / 2, g = Eb/N0."""
    g = torch.Generator().manual_seed(3)
    bpsk = constellation("bpsk")
    fading = RayleighBlockFading(block_length=4)
    for ebno_db in [0.0, 5.0, 10.0, 15.0, 20.0]:
        gamma = 10 ** (ebno_db / 10)
        theory = 0.5 * (1 - math.sqrt(gamma / (1 + gamma)))
        assert theory >= 1e-4
        n0 = noise_var_from_ebno_db(ebno_db, 1)
        bits = torch.randint(0, 2, (500, 4000), generator=g, dtype=torch.uint8)
        y, h = fading(bpsk.map(bits), n0, generator=g)
        x_hat, nv_eff = equalize(y, h, n0)
        llr = bpsk.demap(x_hat, nv_eff)
        ber = float(((llr < 0).to(torch.uint8) != bits).double().mean())
        assert abs(ber - theory) <= 0.1 * theory, (ebno_db, ber, theory)


def test_pilot_csi_error_variance():
    """With x = 1, y - h_hat = w - e has variance N0 (1 + 1/P) for pilot CSI, N0 if perfect."""
    g = torch.Generator().manual_seed(4)
    x = torch.ones(20_000, 16, dtype=torch.complex64)
    n0 = 0.2
    y, h = RayleighBlockFading(block_length=8)(x, n0, generator=g)
    assert float((y - h).abs().pow(2).mean()) == pytest.approx(n0, rel=0.02)
    for pilots in (1, 4):
        fading = RayleighBlockFading(block_length=8, csi="pilot", num_pilots=pilots)
        y, h_hat = fading(x, n0, generator=g)
        assert torch.equal(h_hat[:, :8], h_hat[:, :1].expand(-1, 8))
        mse = float((y - h_hat).abs().pow(2).mean())
        assert mse == pytest.approx(n0 * (1 + 1 / pilots), rel=0.02)
        assert fading.csi_error_var(n0) == pytest.approx(n0 / pilots)


def test_estimate_channel_ls_error_variance():
    g = torch.Generator().manual_seed(5)
    n0, num_pilots = 0.5, 6
    h = torch.randn(50_000, 1, dtype=torch.complex64, generator=g)
    pilots = torch.exp(1j * torch.linspace(0, 3, num_pilots)).to(torch.complex64)  # unit
    y_p = add_awgn(h * pilots, n0, g)
    h_hat, err_var = estimate_channel_ls(y_p, pilots, n0)
    assert h_hat.shape == (50_000, 1)
    torch.testing.assert_close(err_var, torch.full((50_000, 1), n0 / num_pilots))
    assert float((h_hat - h).abs().pow(2).mean()) == pytest.approx(n0 / num_pilots, rel=0.02)
    noiseless, _ = estimate_channel_ls(h * pilots, pilots, n0)
    torch.testing.assert_close(noiseless, h)


def test_equalize_zero_forcing():
    h = torch.tensor([[0.5 + 0.5j, 2.0 + 0j, -1j]])
    x = torch.tensor([[1 + 0j, -1 + 0j, 0.5 + 0.5j]])
    x_hat, nv_eff = equalize(h * x, h, 0.1)
    torch.testing.assert_close(x_hat, x)
    torch.testing.assert_close(nv_eff, torch.tensor([[0.2, 0.025, 0.1]]))
    _, nv_pilot = equalize(h * x, h, 0.1, h_error_var=0.05)
    torch.testing.assert_close(nv_pilot, torch.tensor([[0.3, 0.0375, 0.15]]))


def test_fading_bad_input():
    with pytest.raises(ValueError):
        RayleighBlockFading(block_length=0)
    with pytest.raises(ValueError):
        RayleighBlockFading(csi="estimated")
    with pytest.raises(ValueError):
        RayleighBlockFading(csi="pilot", num_pilots=0)
    with pytest.raises(TypeError):
        RayleighBlockFading()(torch.ones(4), 0.1)  # real x
    with pytest.raises(ValueError):
        RayleighBlockFading()(torch.ones(4, dtype=torch.complex64), -1.0)
    with pytest.raises(TypeError):
        equalize(torch.ones(3), torch.ones(3), 0.1)
    with pytest.raises(ValueError):
        estimate_channel_ls(torch.ones(4, 3, dtype=torch.complex64), torch.zeros(3), 0.1)


# -- packet loss -------------------------------------------------------------------------------


def test_gilbert_elliott_loss_rate_and_burst_length():
    ge = GilbertElliott.from_loss_rate(0.1, 4.0)
    assert ge.p_bad_to_good == pytest.approx(0.25)
    assert ge.p_good_to_bad == pytest.approx(0.1 * 0.25 / 0.9)
    assert ge.loss_rate == pytest.approx(0.1)
    assert ge.mean_burst_length == pytest.approx(4.0)
    mask = ge.sample(500_000, generator=torch.Generator().manual_seed(6))
    assert mask.dtype == torch.bool and mask.shape == (500_000,)
    assert float(mask.double().mean()) == pytest.approx(0.1, rel=0.05)
    bursts = burst_lengths(mask)
    assert float(bursts.double().mean()) == pytest.approx(4.0, rel=0.05)
    # Gilbert bursts are geometric: P(length = 1) = p_bg.
    assert float((bursts == 1).double().mean()) == pytest.approx(0.25, rel=0.08)


def test_gilbert_elliott_is_markov_and_reproducible():
    ge = GilbertElliott(0.05, 0.3, loss_good=0.01, loss_bad=0.8)
    assert isinstance(ge, MarkovPacketLoss)
    explicit = MarkovPacketLoss([[0.95, 0.05], [0.3, 0.7]], [0.01, 0.8])
    assert ge.loss_rate == pytest.approx(explicit.loss_rate)
    a = ge.sample(1000, generator=torch.Generator().manual_seed(7))
    b = explicit.sample(1000, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert ge.sample(0).shape == (0,)


def test_markov_packet_loss_explicit_three_states():
    p = [[0.90, 0.08, 0.02], [0.20, 0.70, 0.10], [0.05, 0.15, 0.80]]
    loss = [0.0, 0.3, 0.95]
    model = MarkovPacketLoss(p, loss)
    pi = model.stationary_distribution
    torch.testing.assert_close(pi @ model.transition_matrix, pi)
    assert float(pi.sum()) == pytest.approx(1.0)
    assert model.loss_rate == pytest.approx(float(pi @ torch.tensor(loss, dtype=torch.float64)))
    mask = model.sample(400_000, generator=torch.Generator().manual_seed(8))
    assert float(mask.double().mean()) == pytest.approx(model.loss_rate, rel=0.05)
    measured_burst = float(burst_lengths(mask).double().mean())
    assert measured_burst == pytest.approx(model.mean_burst_length, rel=0.05)
    # State sequence follows the transition matrix.
    states = model.sample_states(200_000, generator=torch.Generator().manual_seed(9))
    counts = torch.zeros(3, 3, dtype=torch.float64)
    counts.index_put_(
        (states[:-1], states[1:]), torch.ones(len(states) - 1, dtype=torch.float64), accumulate=True
    )
    empirical = counts / counts.sum(1, keepdim=True)
    torch.testing.assert_close(empirical, model.transition_matrix, atol=0.01, rtol=0)


def test_mean_burst_length_edge_cases():
    assert math.isnan(MarkovPacketLoss([[1.0]], [0.0]).mean_burst_length)
    assert MarkovPacketLoss([[1.0]], [1.0]).mean_burst_length == math.inf
    lossless = GilbertElliott.from_loss_rate(0.0, 2.0)
    assert lossless.loss_rate == 0.0
    assert math.isnan(lossless.mean_burst_length)
    assert not bool(lossless.sample(1000, generator=torch.Generator().manual_seed(0)).any())


@pytest.mark.parametrize(
    "call",
    [
        lambda: MarkovPacketLoss([[0.5, 0.4], [0.3, 0.7]], [0.0, 1.0]),  # row sum 0.9
        lambda: MarkovPacketLoss([[1.2, -0.2], [0.3, 0.7]], [0.0, 1.0]),
        lambda: MarkovPacketLoss([[0.5, 0.5]], [0.0]),  # not square
        lambda: MarkovPacketLoss([[0.5, 0.5], [0.5, 0.5]], [0.0, 1.5]),
        lambda: MarkovPacketLoss([[0.5, 0.5], [0.5, 0.5]], [0.0]),
        lambda: MarkovPacketLoss([[1.0, 0.0], [0.0, 1.0]], [0.0, 1.0]),  # no unique stationary
        lambda: GilbertElliott(-0.1, 0.5),
        lambda: GilbertElliott(0.1, 1.5),
        lambda: GilbertElliott.from_loss_rate(0.9, 1.0),  # needs bursts >= 9
        lambda: GilbertElliott.from_loss_rate(1.0, 4.0),
        lambda: GilbertElliott.from_loss_rate(0.1, 0.5),
        lambda: GilbertElliott(0.1, 0.5).sample(-1),
    ],
)
def test_packet_loss_bad_parameters_raise(call):
    with pytest.raises(ValueError):
        call()


def test_burst_lengths():
    mask = torch.tensor([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=torch.bool)
    assert burst_lengths(mask).tolist() == [2, 1, 3]
    rows = torch.tensor([[0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    assert burst_lengths(rows).tolist() == [2, 2]  # runs do not join across rows
    assert burst_lengths(torch.zeros(5, dtype=torch.bool)).tolist() == []
    with pytest.raises(TypeError):
        burst_lengths(torch.tensor([1, 0, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_channels_on_cuda():
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.ones(64, 32, dtype=torch.complex64, device="cuda")
    y = add_awgn(x, torch.full((64, 1), 0.1, device="cuda"), g)
    assert y.device.type == "cuda"
    y, h = RayleighBlockFading(8, csi="pilot", num_pilots=2)(x, 0.1, generator=g)
    x_hat, nv = equalize(y, h, 0.1)
    assert x_hat.device.type == "cuda" and nv.device.type == "cuda"
    mask = GilbertElliott(0.1, 0.3).sample(100, generator=g, device="cuda")
    assert mask.device.type == "cuda"
